"""Files on disk -> uint8 arrays/tensors -> device batches (CIFAR pickles, digits, ImageFolder, released -C/-P)."""

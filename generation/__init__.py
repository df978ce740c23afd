"""Building the -C and -P sets on disk in the released layouts, from a clean dataset (``generate.py``).

    corruption_sets.py    CIFAR-C .npy files and ImageNet-C JPEG trees (generate_cifar_c, generate_imagenet_c)
    perturbation_sets.py  CIFAR-P .npy files and ImageNet-P MP4 trees (generate_cifar_p, generate_imagenet_p)
    output.py             the output folder: create or resume, manifest.json, finish
    npy_files.py          .npy files built from resumable chunk files; labels.npy
    jpeg_files.py         the ImageNet-C JPEG encoding and sha256sum lists
    video.py              H.264 MP4 files of ImageNet-P videos
    sources.py            clean sources (CIFAR pickles, digits, ImageFolder, arrays) and image decoding
    pipeline.py           the chunk loop: bounded thread-pool writes, progress bars
    grid.py               a PNG grid of the corruptions for a visual check
    cli.py                the flags and runs of generate.py
"""

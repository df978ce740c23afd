"""The quickstart dataset: scikit-learn's 8x8 handwritten digits, upsampled to 32x32 RGB.

1,797 real images ship inside scikit-learn, so the quickstart and the tests need no download. The split
is fixed (stratified, seeded): 1,297 training and 500 test images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

DIGITS_NUM_CLASSES = 10
DIGITS_TEST_SIZE = 500
DIGITS_SPLIT_SEED = 0
DIGITS_SIZE = 32


@lru_cache(maxsize=1)
def _digits_32() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0))[:, None]  # (N, 1, 8, 8) in [0, 255]
    big = F.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    grey = big.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()  # (N, 32, 32)
    return np.repeat(grey[..., None], 3, axis=-1), bunch.target.astype(np.int64)


def load_digits(train: bool) -> tuple[np.ndarray, np.ndarray]:
    """One split of the upsampled digits.

    Returns:
        images (N, 32, 32, 3) uint8 (grey replicated to RGB), labels (N,) int64; N = 1,297 (train) or 500 (test).
    """
    if not isinstance(train, (bool, np.bool_)):
        raise ValueError(f"load_digits(train={train!r}): expected True (1,297-image training split) or False "
                         f"(500-image test split)")
    images, labels = _digits_32()
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test_idx = []
    per_class = np.bincount(labels, minlength=DIGITS_NUM_CLASSES) * DIGITS_TEST_SIZE / len(labels)
    quotas = np.floor(per_class).astype(int)
    quotas[np.argsort(per_class - quotas)[::-1][: DIGITS_TEST_SIZE - quotas.sum()]] += 1  # largest remainders
    for c in range(DIGITS_NUM_CLASSES):
        members = np.flatnonzero(labels == c)
        test_idx.append(rng.choice(members, size=quotas[c], replace=False))
    test_mask = np.zeros(len(labels), dtype=bool)
    test_mask[np.concatenate(test_idx)] = True
    mask = ~test_mask if train else test_mask
    return np.ascontiguousarray(images[mask]), labels[mask]

"""The per-image PIL AugMix backend, faithful to google-research/augmix (docs/augmix.md §2-§5).

One image at a time, on uint8 PIL images, drawing from a NumPy legacy ``RandomState`` in the official order
(§3.1), so a seeded replay reproduces the official ``aug()``. It is the reference the batched tensor backend
(augment/ops.py, augment/augmix.py) is tested against, and the ``pil`` backend for DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import Dataset

from augment import params

Fill = int | tuple[int, int, int]
RNG = np.random.RandomState

# The released-ImageNet script passed ``fillcolor=128`` to the affine ops of an RGB image; Pillow reads an int
# ink on RGB as a packed 0xBBGGRR colour, so its fill was (128, 0, 0) (dark red), not the grey §7.2 assumes.
# An int ``fill`` here is a grey level on every channel (the intent); pass this tuple to replay that script.
RELEASED_IMAGENET_FILL: tuple[int, int, int] = (128, 0, 0)

# ---------------------------------------------------------------- ops: uint8 RGB PIL image -> same


def _fillcolor(fill: Fill) -> tuple[int, int, int]:
    if isinstance(fill, int):
        return (fill, fill, fill)
    if len(fill) != 3:
        raise ValueError(f"fill must be an int grey level or an (R, G, B) tuple, got {fill!r}")
    return tuple(int(v) for v in fill)


def _affine(img: Image.Image, coeffs: tuple[float, ...], fill: Fill) -> Image.Image:
    # §2.5.2: inverse map, bilinear, fill outside; the output keeps the input size (official: IMAGE_SIZE^2).
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR,
                         fillcolor=_fillcolor(fill))


def autocontrast(img: Image.Image) -> Image.Image:
    return ImageOps.autocontrast(img)


def equalize(img: Image.Image) -> Image.Image:
    return ImageOps.equalize(img)


def posterize(img: Image.Image, bits: int) -> Image.Image:
    """Keep the top ``bits`` bits (AugMix keeps at most 4, §2.3)."""
    return ImageOps.posterize(img, int(bits))


def solarize(img: Image.Image, threshold: int) -> Image.Image:
    """Invert values >= ``threshold``."""
    return ImageOps.solarize(img, threshold)


def rotate(img: Image.Image, degrees: float, fill: Fill = 0) -> Image.Image:
    """Counter-clockwise about the centre, same size; 0 degrees is an exact copy."""
    return img.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=_fillcolor(fill))


def shear_x(img: Image.Image, coef: float, fill: Fill = 0) -> Image.Image:
    """Row y shifts left by coef * (y + 0.5) px: the origin is the top-left corner (§2.5.2)."""
    return _affine(img, (1, coef, 0, 0, 1, 0), fill)


def shear_y(img: Image.Image, coef: float, fill: Fill = 0) -> Image.Image:
    return _affine(img, (1, 0, 0, coef, 1, 0), fill)


def translate_x(img: Image.Image, pixels: int, fill: Fill = 0) -> Image.Image:
    """Output column x copies input column x + pixels: positive moves content left."""
    return _affine(img, (1, 0, pixels, 0, 1, 0), fill)


def translate_y(img: Image.Image, pixels: int, fill: Fill = 0) -> Image.Image:
    """Positive ``pixels`` moves content up."""
    return _affine(img, (1, 0, 0, 0, 1, pixels), fill)


def color(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Color(img).enhance(factor)


def contrast(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance(factor)


def brightness(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(factor)


def sharpness(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Sharpness(img).enhance(factor)


PIL_OPS: dict[str, Callable[..., Image.Image]] = {
    "autocontrast": autocontrast, "equalize": equalize, "posterize": posterize, "rotate": rotate,
    "solarize": solarize, "shear_x": shear_x, "shear_y": shear_y, "translate_x": translate_x,
    "translate_y": translate_y, "color": color, "contrast": contrast, "brightness": brightness,
    "sharpness": sharpness,
}
_AFFINE_OPS = frozenset({"rotate", "shear_x", "shear_y", "translate_x", "translate_y"})


def apply_op(img: Image.Image, name: str, parameter: Any, fill: Fill = 0) -> Image.Image:
    """Apply op ``name`` with its concrete parameter (None for autocontrast / equalize)."""
    if name not in PIL_OPS:
        raise KeyError(f"unknown AugMix op {name!r}; valid: {', '.join(PIL_OPS)}")
    if name in params.OPS_WITHOUT_LEVEL:
        return PIL_OPS[name](img)
    if name in _AFFINE_OPS:
        return PIL_OPS[name](img, parameter, fill)
    return PIL_OPS[name](img, parameter)


# ---------------------------------------------------------------- random draws (§2.2, §3.1)


def _global_rng() -> RNG:
    return np.random.mtrand._rand  # the legacy global state the official np.random.* calls draw from


def sample_op_parameter(name: str, severity: float, image_size: int, rng: RNG) -> Any:
    """Draw one op call's signed parameter in the official order: level, then (signed ops only) the sign.

    Args:
        name: an op of augment.params.ALL_OPS.
        severity: s in 1..10; the level is u ~ U[0.1, s), re-drawn on every call.
        image_size: S, the square image's side (sets the translate range).
        rng: the legacy NumPy generator to draw from.

    Returns:
        The parameter the op of the same name takes (int degrees / pixels / bits / threshold, float coef /
        factor), or None for autocontrast and equalize, which consume no random numbers.
    """
    if name in params.OPS_WITHOUT_LEVEL:
        return None
    level = rng.uniform(low=params.LEVEL_LOW, high=severity)
    magnitude = params.op_magnitude(name, level, image_size)
    if name in params.OPS_WITH_SIGN and rng.uniform() > 0.5:  # one U[0,1) draw; > 0.5 negates (§2.2)
        magnitude = -magnitude
    return magnitude


def sample_op_name(ops: Sequence[str], rng: RNG) -> str:
    """Uniform op choice with replacement. The official ``np.random.choice(list)`` (no ``p``) draws exactly
    ``randint(0, len(list))`` from the legacy stream, so this consumes the same numbers."""
    return ops[rng.randint(0, len(ops))]


def sample_mixing_weights(width: int, alpha: float, rng: RNG) -> tuple[np.ndarray, np.float32]:
    """Chain weights w ~ Dirichlet(alpha * 1_k) and skip weight m ~ Beta(alpha, alpha), both float32 (§3.1)."""
    weights = np.float32(rng.dirichlet([alpha] * width))
    m = np.float32(rng.beta(alpha, alpha))
    return weights, m


# ---------------------------------------------------------------- normalise and mix (§3.2)


def normalize_pil(img: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """ToTensor + Normalize: (H, W, 3) uint8 PIL -> (3, H, W) float32 ``(v / 255 - mean) / std``, CPU."""
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).to(torch.float32).div(255)
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return x.sub(mean_t).div(std_t)


def mix(clean: torch.Tensor, chains: Sequence[torch.Tensor], weights: np.ndarray, m: float) -> torch.Tensor:
    """``(1 - m) * clean + m * sum_i w_i * chain_i`` in float32, not requantised (§3.2).

    The official code puts m on the mixture of chains and 1 - m on the original (the paper's pseudo-code writes
    the opposite; Beta(a, a) is symmetric, so only the random-stream replay tells them apart).

    Args:
        clean: (3, H, W) float32 normalised original.
        chains: k tensors like ``clean``, the normalised chain outputs.
        weights: (k,) float32 chain weights summing to 1.
        m: float32 skip weight in [0, 1].
    """
    acc = torch.zeros_like(clean)
    for w, chain in zip(weights, chains, strict=True):
        acc += float(w) * chain
    m = float(np.float32(m))
    return (1 - m) * clean + m * acc


# ---------------------------------------------------------------- one AugMix view (§3)

_NORMALIZE_05 = (0.5, 0.5, 0.5)  # CIFAR: maps [0, 1] to [-1, 1] (§3.4)


def _check_knobs(severity: float, width: int, alpha: float) -> None:
    if not 1 <= severity <= params.MAX_LEVEL:
        raise ValueError(f"severity must be in 1..{params.MAX_LEVEL}, got {severity!r}")
    if int(width) != width or width < 1:
        raise ValueError(f"width (number of chains) must be a positive integer, got {width!r}")
    if not alpha > 0:
        raise ValueError(f"alpha (Dirichlet/Beta concentration) must be > 0, got {alpha!r}")


def _image_side(img: Image.Image) -> int:
    if not isinstance(img, Image.Image) or img.mode != "RGB":
        got = f"mode {img.mode!r}" if isinstance(img, Image.Image) else type(img).__name__
        raise ValueError(f"AugMix expects an RGB PIL image, got {got}")
    width, height = img.size
    if width != height:
        # The official ops use one IMAGE_SIZE for the output size and the translate range (§2.3).
        raise ValueError(f"AugMix expects a square S x S image (after the crop), got {width} x {height}")
    return width


def augment_chain(img: Image.Image, ops: Sequence[str], severity: float, depth: int, fill: Fill,
                  rng: RNG) -> Image.Image:
    """One chain: depth (drawn here when ``depth <= 0``), then per step op, level, sign (§3.1 step 3)."""
    image_size = img.size[0]
    steps = depth if depth > 0 else rng.randint(1, 4)  # uniform in {1, 2, 3}, per chain (§9 defect 5 fixed)
    for _ in range(steps):
        name = sample_op_name(ops, rng)
        img = apply_op(img, name, sample_op_parameter(name, severity, image_size, rng), fill)
    return img


def augmix_pil(img: Image.Image, severity: float = 3, width: int = 3, depth: int = -1, alpha: float = 1.0,
               all_ops: bool = False, fill: Fill = 0, mean: Sequence[float] = _NORMALIZE_05,
               std: Sequence[float] = _NORMALIZE_05, rng: RNG | None = None) -> torch.Tensor:
    """One AugMix view of ``img``, exactly as the official ``aug()`` (§3.1 draw order, §3.2 mixing).

    Args:
        img: S x S RGB PIL image (uint8), already flipped / cropped.
        severity: s in 1..10; every op call draws its level in U[0.1, s). 3 for CIFAR, 1 for ImageNet.
        width: k, the number of chains mixed.
        depth: ops per chain; -1 (or any value <= 0) draws 1..3 independently per chain.
        alpha: Dirichlet (chain weights) and Beta (skip weight) concentration.
        all_ops: add color / contrast / brightness / sharpness (withheld in the paper, §2.1).
        fill: affine fill, an int grey level (0 official, 128 grey) or an (R, G, B) tuple.
        mean, std: per-channel Normalize constants.
        rng: legacy NumPy generator; None draws from NumPy's global one, as the official code does.

    Returns:
        (3, S, S) float32 CPU tensor, normalised, not requantised.
    """
    _check_knobs(severity, width, alpha)
    _image_side(img)
    rng = _global_rng() if rng is None else rng
    ops = params.op_list(all_ops)
    weights, m = sample_mixing_weights(width, alpha, rng)
    chains = [normalize_pil(augment_chain(img, ops, severity, depth, fill, rng), mean, std) for _ in range(width)]
    return mix(normalize_pil(img, mean, std), chains, weights, m)


class AugMixPIL:
    """Picklable per-image AugMix (the ``pil`` backend): holds the knobs, draws from the rng it is given.

    ``AugMixPIL(severity=3)(img, rng)`` returns a (3, S, S) float32 normalised view (see :func:`augmix_pil`).
    """

    def __init__(self, severity: float = 3, width: int = 3, depth: int = -1, alpha: float = 1.0,
                 all_ops: bool = False, fill: Fill = 0, mean: Sequence[float] = _NORMALIZE_05,
                 std: Sequence[float] = _NORMALIZE_05):
        _check_knobs(severity, width, alpha)
        _fillcolor(fill)
        self.severity = severity    # 3 CIFAR, 1 ImageNet
        self.width = width          # chains per view
        self.depth = depth          # -1: 1..3 per chain
        self.alpha = alpha          # Dirichlet / Beta concentration
        self.all_ops = all_ops      # False: the paper's 9 ops
        self.fill = fill            # affine fill grey level (or RGB)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def __call__(self, img: Image.Image, rng: RNG | None = None) -> torch.Tensor:
        return augmix_pil(img, self.severity, self.width, self.depth, self.alpha, self.all_ops, self.fill,
                          self.mean, self.std, rng)

    def __repr__(self) -> str:
        return (f"AugMixPIL(severity={self.severity}, width={self.width}, depth={self.depth}, alpha={self.alpha}, "
                f"all_ops={self.all_ops}, fill={self.fill}, mean={self.mean}, std={self.std})")


# ---------------------------------------------------------------- dataset wrapper (§5)

BaseTransform = Callable[[Image.Image, RNG], Image.Image]
SEED_LIMIT = 2**32  # np.random.RandomState accepts seeds in [0, 2**32)


class AugMixDataset(Dataset):
    """Wraps a dataset of (RGB PIL image, int label) into AugMix training samples (§1, §5).

    ``dataset[(index, sample_seed)]`` (or ``dataset[index]``, seed = index) seeds
    ``np.random.RandomState(sample_seed)``, applies ``base_transform(img, rng)`` once, then returns
    ``((clean, aug1, aug2), label)`` with jsd=True, ``(aug, label)`` with jsd=False, or ``(clean, label)``
    when ``augmix`` is None (standard augmentation). Views are (3, S, S) float32 normalised tensors. All
    randomness is a function of the sample seed, so results do not depend on the number of DataLoader
    workers and a resumed run replays exactly (this replaces the official unseeded workers, §9 defect 4).
    """

    def __init__(self, base: Any, base_transform: BaseTransform | None, augmix: AugMixPIL | None,
                 mean: Sequence[float] = _NORMALIZE_05, std: Sequence[float] = _NORMALIZE_05, jsd: bool = True):
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if augmix is not None and (tuple(augmix.mean), tuple(augmix.std)) != (self.mean, self.std):
            raise ValueError(f"AugMixDataset normalises the clean view with mean={self.mean}, std={self.std} but "
                             f"augmix uses mean={augmix.mean}, std={augmix.std}; the views must share them")
        self.base = base
        self.base_transform = base_transform
        self.augmix = augmix
        self.jsd = jsd

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Any, int]:
        index, seed = item if isinstance(item, tuple | list) else (item, item)
        if not 0 <= int(seed) < SEED_LIMIT:
            raise ValueError(f"sample seed for index {index} must be in [0, 2**32), got {seed}")
        rng = np.random.RandomState(int(seed))
        img, label = self.base[int(index)]
        if self.base_transform is not None:
            img = self.base_transform(img, rng)
        if self.augmix is None:
            return normalize_pil(img, self.mean, self.std), label
        if not self.jsd:
            return self.augmix(img, rng), label
        clean = normalize_pil(img, self.mean, self.std)
        return (clean, self.augmix(img, rng), self.augmix(img, rng)), label

"""The images a -P sequence starts from, and the geometric sequences: translate, rotate, scale, shear, tilt, zoom_blur
(docs/corruptions.md §8.2).

The reference warps PIL images with torchvision's 2018 ``affine`` (Pillow's AFFINE transform) and tilts them with
OpenCV's ``warpPerspective``. Both are reproduced per output pixel as batched gathers with the libraries' own
arithmetic (Pillow: float64 coordinates, truncated bilinear; OpenCV 3.4: 1/32-pixel fixed point), one set of
per-(video, frame) matrices at a time, on any device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor

SIDE = MappingProxyType({"cifar": 32, "imagenet": 224})  # frame side S per -P preset
IMAGENET_RESIZE = 256  # ImageNet-P base image: torchvision Resize(256), shorter side (§8.2 "ImageNet-P base image")
GATHER_BUDGET = 1 << 17  # output pixels per gather block: ~3 MB float64 temporaries stay in cache (2-3x faster)

# Per-frame parameters, written as the reference scripts compute them (make_cifar_p.py / make_imagenet_p.py), so
# every value has the reference's float bits. Index i is the frame.
TRANSLATE_PX = MappingProxyType({
    "cifar": tuple(i - 7 for i in range(16)),            # -7 .. +8 px, nearest, black fill
    "imagenet": tuple(i - 20 for i in range(41)),        # -20 .. +20 px on the Resize(256) image
})
ROTATE_DEG = MappingProxyType({p: tuple(i - 15 for i in range(31)) for p in ("cifar", "imagenet")})
SCALE_FACTORS = MappingProxyType({
    "cifar": tuple((i * 2 + 70) / 100. for i in range(31)),        # 0.70 .. 1.30
    "imagenet": tuple((i * 2.5 + 40) / 100. for i in range(31)),   # 0.40 .. 1.15
})
SHEAR_DEG = MappingProxyType({p: tuple(i - 15 for i in range(31)) for p in ("cifar", "imagenet")})
TILT_DEG = MappingProxyType({
    "cifar": tuple(0.75 * (i - 15) for i in range(31)),  # phi = theta
    "imagenet": tuple(i - 15 for i in range(31)),
})
ZOOM_FACTORS = MappingProxyType({p: tuple(1 + 0.004 * i for i in range(1, 31)) for p in ("cifar", "imagenet")})


@dataclass(frozen=True)
class BaseImages:
    """The clean images of a batch of -P videos and the centre crop every frame is cut from.

    Attributes:
        pixels: (N, 3, Hc, Wc) uint8 canvas on any device; image n fills ``pixels[n, :, :h_n, :w_n]``.
        sizes: (N, 2) int64 ``(h_n, w_n)``, same device.
        side: frame side S (32 for CIFAR-P, 224 for ImageNet-P).
    """

    pixels: Tensor
    sizes: Tensor
    side: int

    def crop_origin(self) -> Tensor:
        """(N, 2) int64 ``(top, left)`` of torchvision's CenterCrop: ``int(round((h - S) / 2))``, half to even."""
        return torch.round((self.sizes - self.side).to(torch.float64) / 2).to(torch.int64)

    def crop(self) -> Tensor:
        """(N, 3, S, S) uint8: the centre crop of every image (the clean frame of CIFAR-P and ImageNet-P)."""
        origin = self.crop_origin()
        steps = torch.arange(self.side, device=self.pixels.device)
        rows = (origin[:, 0:1] + steps)[:, None, :, None]  # (N, 1, S, 1)
        cols = (origin[:, 1:2] + steps)[:, None, None, :]  # (N, 1, 1, S)
        batch = torch.arange(len(self.pixels), device=self.pixels.device)[:, None, None, None]
        channels = torch.arange(3, device=self.pixels.device)[None, :, None, None]
        return self.pixels[batch, channels, rows, cols]


def base_images(images: Tensor, preset: str, sizes: Tensor | None = None) -> BaseImages:
    """Validate the input contract of :func:`corruptions.sequences.make_sequences` and wrap it.

    CIFAR-P: ``images`` is (N, 3, 32, 32). ImageNet-P: the Resize(256) images (shorter side exactly 256, any
    aspect ratio); images of different sizes share a canvas, each at the top-left, with ``sizes`` giving their
    ``(h, w)``. A 224x224 image is refused: geometric frames need the content around the crop.
    """
    if preset not in SIDE:
        raise ValueError(f"unknown -P preset {preset!r}; valid: {', '.join(SIDE)}")
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, 3, H, W) uint8 tensor, got {got}")
    n, _, h, w = images.shape
    if preset == "cifar":
        if (h, w) != (32, 32) or sizes is not None:
            raise ValueError(f"preset 'cifar' expects 32x32 images (no sizes), got {h}x{w}; use preset='imagenet' "
                             "with the Resize(256) image for ImageNet-P")
        return BaseImages(images, torch.full((n, 2), 32, dtype=torch.int64, device=images.device), 32)
    if sizes is None:
        sizes = torch.tensor([[h, w]] * n, dtype=torch.int64, device=images.device)
    sizes = torch.as_tensor(sizes).to(device=images.device, dtype=torch.int64)
    if tuple(sizes.shape) != (n, 2):
        raise ValueError(f"sizes must have shape ({n}, 2) (height, width per image), got {tuple(sizes.shape)}")
    too_big = (sizes[:, 0] > h) | (sizes[:, 1] > w)
    not_resized = sizes.amin(dim=1) != IMAGENET_RESIZE
    for bad, what in ((too_big, f"larger than the {h}x{w} canvas"),
                      (not_resized, f"not a Resize({IMAGENET_RESIZE}) image (shorter side must be {IMAGENET_RESIZE})")):
        if bad.any():
            i = int(bad.nonzero()[0])
            raise ValueError(f"preset 'imagenet': image {i} of size {sizes[i, 0]}x{sizes[i, 1]} is {what}; pass the "
                             f"torchvision Resize({IMAGENET_RESIZE}) image (the crop to 224 happens inside)")
    return BaseImages(images, sizes, SIDE[preset])


def affine_linear_part(angle: float, scale: float, shear: float) -> tuple[float, float, float, float]:
    """``(a0, a1, a3, a4)`` of the inverse affine map of torchvision 0.2-0.4 ``functional.affine`` (Python floats).

    The forward map is rotation by ``angle`` (clockwise on screen, y down), x-shear by ``shear`` degrees and
    isotropic ``scale``; Pillow needs its inverse, ``(scale^-1 / d) * [[cos(a+s), sin(a+s)], [-sin a, cos a]]``
    with ``d = cos(a+s) cos a + sin(a+s) sin a``. Evaluated in the same order as torchvision, so the doubles match.
    """
    a, s = math.radians(angle), math.radians(shear)
    inv_scale = 1.0 / scale
    d = math.cos(a + s) * math.cos(a) + math.sin(a + s) * math.sin(a)
    return tuple(inv_scale / d * m for m in (math.cos(a + s), math.sin(a + s), -math.sin(a), math.cos(a)))


def affine_matrices(sizes: Tensor, frames: Sequence[tuple[float, tuple[float, float], float, float]],
                    exact_center: bool = False) -> Tensor:
    """Pillow AFFINE coefficients ``(a0 .. a5)`` per image and frame: output pixel centre ``(x + .5, y + .5)`` reads
    the input at ``(a0 x' + a1 y' + a2, a3 x' + a4 y' + a5)``.

    Quirk kept (torchvision <= 0.7, §8.2 "Affine sequences"): the fixed point is ``(w/2 + 0.5, h/2 + 0.5)``, half a
    pixel right of and below the true centre; ``exact_center=True`` uses ``(w/2, h/2)`` (later torchvision).

    Args:
        sizes: (N, 2) int64 ``(h, w)`` of each image, any device.
        frames: per frame ``(angle deg, (tx, ty) px, scale, shear deg)``, as torchvision's ``affine`` takes them.
        exact_center: the corrected centre.

    Returns:
        (N, T, 6) float64 on ``sizes``' device.
    """
    dev = sizes.device
    linear = torch.tensor([affine_linear_part(a, sc, sh) for a, _, sc, sh in frames], dtype=torch.float64,
                          device=dev)  # (T, 4), per frame, never per image
    shift = torch.tensor([t for _, t, _, _ in frames], dtype=torch.float64, device=dev)  # (T, 2)
    offset = 0.0 if exact_center else 0.5
    cy, cx = (sizes.to(torch.float64) * 0.5 + offset).unbind(-1)  # (N,)
    cx, cy = cx[:, None], cy[:, None]  # (N, 1)
    a0, a1, a3, a4 = (v[None, :] for v in linear.unbind(-1))  # (1, T)
    ux, uy = -cx - shift[None, :, 0], -cy - shift[None, :, 1]  # (N, T): the translation applied first
    a2 = (a0 * ux + a1 * uy) + cx
    a5 = (a3 * ux + a4 * uy) + cy
    n, t = ux.shape
    return torch.stack([a0.expand(n, t), a1.expand(n, t), a2, a3.expand(n, t), a4.expand(n, t), a5], dim=-1)


def tilt_homographies(sizes: Tensor, angles_deg: Sequence[float], identity_at_zero: bool = False) -> Tensor:
    """Source -> destination homography of the tilt sequence, ``P2 T Rx(theta) Ry(phi) P1`` with phi = theta (§8.2).

    Quirk kept: the reference's ``P1`` lifts pixel ``(u, v)`` to the 3-D point ``(u - w/2, v - h/2, 1)``, so even
    at phi = theta = 0 the map is a scale by ``f / (f + 1)`` about ``(w/2, h/2)`` (f = sqrt(w^2 + h^2); 0.978 at
    32 px). ``identity_at_zero=True`` lifts to z = 0 instead, making the zero-angle frame the identity.

    Args:
        sizes: (N, 2) int64 ``(h, w)`` of the whole (uncropped) images, any device.
        angles_deg: per frame, phi = theta in degrees.

    Returns:
        (N, T, 3, 3) float64 on ``sizes``' device.
    """
    dev, f64 = sizes.device, torch.float64
    n, t = len(sizes), len(angles_deg)
    h, w = sizes.to(f64).unbind(-1)
    f = torch.sqrt(w**2 + h**2)
    zeros, ones = torch.zeros(n, dtype=f64, device=dev), torch.ones(n, dtype=f64, device=dev)
    lift = zeros if identity_at_zero else ones
    p1 = torch.stack([torch.stack([ones, zeros, -w / 2]), torch.stack([zeros, ones, -h / 2]),
                      torch.stack([zeros, zeros, lift]), torch.stack([zeros, zeros, ones])]).permute(2, 0, 1)
    depth = torch.eye(4, dtype=f64, device=dev).repeat(n, 1, 1)
    depth[:, 2, 3] = f
    p2 = torch.stack([torch.stack([f, zeros, w / 2, zeros]), torch.stack([zeros, f, h / 2, zeros]),
                      torch.stack([zeros, zeros, ones, zeros])]).permute(2, 0, 1)  # (N, 3, 4)
    rad = [math.radians(a) for a in angles_deg]  # np.deg2rad: x * (pi / 180)
    c = torch.tensor([math.cos(r) for r in rad], dtype=f64, device=dev)
    s = torch.tensor([math.sin(r) for r in rad], dtype=f64, device=dev)
    rx = torch.eye(4, dtype=f64, device=dev).repeat(t, 1, 1)
    rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = c, -s, s, c
    ry = torch.eye(4, dtype=f64, device=dev).repeat(t, 1, 1)
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 2, 0], ry[:, 2, 2] = c, -s, s, c
    return (((p2[:, None] @ depth[:, None]) @ rx[None]) @ ry[None]) @ p1[:, None]  # left to right, as NumPy's @


def invert3x3(m: Tensor) -> Tensor:
    """Inverse of (..., 3, 3) float64 matrices by the adjugate, as OpenCV's ``invert`` does for 3x3 (DECOMP_LU)."""
    e = [[m[..., i, j] for j in range(3)] for i in range(3)]
    det = (e[0][0] * (e[1][1] * e[2][2] - e[1][2] * e[2][1]) - e[0][1] * (e[1][0] * e[2][2] - e[1][2] * e[2][0])
           + e[0][2] * (e[1][0] * e[2][1] - e[1][1] * e[2][0]))
    d = 1.0 / det
    cof = [[e[1][1] * e[2][2] - e[1][2] * e[2][1], e[0][2] * e[2][1] - e[0][1] * e[2][2],
            e[0][1] * e[1][2] - e[0][2] * e[1][1]],
           [e[1][2] * e[2][0] - e[1][0] * e[2][2], e[0][0] * e[2][2] - e[0][2] * e[2][0],
            e[0][2] * e[1][0] - e[0][0] * e[1][2]],
           [e[1][0] * e[2][1] - e[1][1] * e[2][0], e[0][1] * e[2][0] - e[0][0] * e[2][1],
            e[0][0] * e[1][1] - e[0][1] * e[1][0]]]
    return torch.stack([torch.stack([v * d for v in row], dim=-1) for row in cof], dim=-2)


def frame_blocks(num_images: int, num_frames: int, side: int, budget: int = GATHER_BUDGET) -> Iterator[slice]:
    """Consecutive frame ranges holding at most ``budget`` output pixels of all videos (at least one frame each).

    Frames are independent here, so blocking bounds memory without changing any value.
    """
    step = max(1, budget // max(1, num_images * side * side))
    for start in range(0, num_frames, step):
        yield slice(start, min(num_frames, start + step))


def video_frame_blocks(num_images: int, num_frames: int, side: int,
                       budget: int = GATHER_BUDGET) -> Iterator[tuple[slice, slice]]:
    """(videos, frames) blocks of at most ``budget`` output pixels: frame ranges over all videos when one frame of
    the batch fits, else groups of videos one frame at a time (224-px frames). Values do not depend on blocking."""
    per_frame = num_images * side * side
    if per_frame <= budget:
        for frames in frame_blocks(num_images, num_frames, side, budget):
            yield slice(0, num_images), frames
        return
    group = max(1, budget // (side * side))
    for t in range(num_frames):
        for start in range(0, num_images, group):
            yield slice(start, min(num_images, start + group)), slice(t, t + 1)


def _window(base: BaseImages, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Full-image coordinates of the crop's pixels: columns (N, 1, 1, S) and rows (N, 1, S, 1) as ``dtype``."""
    origin = base.crop_origin()
    steps = torch.arange(base.side, device=base.pixels.device)
    cols = (origin[:, 1:2] + steps).to(dtype)[:, None, None, :]
    rows = (origin[:, 0:1] + steps).to(dtype)[:, None, :, None]
    return cols, rows


def _gather(pixels: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``pixels[n, :, rows, cols]`` for (N, C, Hc, Wc) pixels of any dtype and (N, F, S, S) int64 index maps already
    inside the canvas: (N, F, C, S, S)."""
    n, c, hc, wc = pixels.shape
    f, s = rows.shape[1], rows.shape[-1]
    index = (rows * wc + cols).reshape(n, f, 1, s * s).expand(n, f, c, s * s)
    return pixels.reshape(n, 1, c, hc * wc).expand(n, f, c, hc * wc).gather(3, index).reshape(n, f, c, s, s)


def pil_affine(base: BaseImages, matrices: Tensor, bilinear: bool) -> Tensor:
    """Pillow's ``Image.transform(size, AFFINE, matrix, NEAREST | BILINEAR)`` of every image and frame, then the crop.

    Pillow (Geometry.c) maps output pixel ``(x, y)`` to ``xin = a0 (x + .5) + a1 (y + .5) + a2`` in float64. Outside
    ``0 <= xin < w, 0 <= yin < h`` the output is black. NEAREST reads pixel ``(int(yin), int(xin))``. BILINEAR
    interpolates around ``xin - .5`` with clamped neighbours, x first (``v = a + (b - a) d``), and **truncates**
    to uint8 (``(UINT8) v``).

    Args:
        base: the images (see :class:`BaseImages`).
        matrices: (N, T, 6) float64 from :func:`affine_matrices`, same device.
        bilinear: BILINEAR (rotate, scale, shear, zoom) or NEAREST (translate, torchvision's default).

    Returns:
        (N, T, 3, S, S) uint8: the centre crop of each transformed image.
    """
    cols, rows = _window(base, torch.float64)
    xh, yh = cols + 0.5, rows + 0.5  # pixel centres, (N, 1, 1, S) and (N, 1, S, 1)
    h = base.sizes[:, 0, None, None, None]
    w = base.sizes[:, 1, None, None, None]
    pixels = base.pixels.to(torch.float64) if bilinear else base.pixels  # converted once, not per tap
    n, t, s = len(matrices), matrices.shape[1], base.side
    out = torch.empty((n, t, 3, s, s), dtype=torch.uint8, device=base.pixels.device)
    for im, fr in video_frame_blocks(n, t, s):
        a = matrices[im, fr, :, None, None].unbind(2)  # six (n', F, 1, 1)
        xin = a[0] * xh[im] + a[1] * yh[im] + a[2]  # (n', F, S, S), Pillow's operation order
        yin = a[3] * xh[im] + a[4] * yh[im] + a[5]
        hb, wb = h[im], w[im]
        inside = (xin >= 0) & (xin < wb) & (yin >= 0) & (yin < hb)
        if bilinear:
            block = _pil_bilinear(pixels[im], xin - 0.5, yin - 0.5, hb, wb)
        else:
            block = _gather(pixels[im], yin.clamp(0, None).to(torch.int64).clamp(max=hb - 1),
                            xin.clamp(0, None).to(torch.int64).clamp(max=wb - 1))
        out[im, fr] = torch.where(inside[:, :, None], block, torch.zeros_like(block))
    return out


def _pil_bilinear(pixels: Tensor, xs: Tensor, ys: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """Pillow's bilinear_filter32RGB at source coordinates (already minus 0.5) of (N, 3, Hc, Wc) float64 pixels:
    (N, F, 3, S, S) uint8, truncated."""
    x0, y0 = torch.floor(xs), torch.floor(ys)
    dx, dy = (xs - x0)[:, :, None], (ys - y0)[:, :, None]
    x0, y0 = x0.to(torch.int64), y0.to(torch.int64)
    xa, xb = x0.clamp(0, None).clamp(max=w - 1), (x0 + 1).clamp(0, None).clamp(max=w - 1)
    ya, yb = y0.clamp(0, None).clamp(max=h - 1), (y0 + 1).clamp(0, None).clamp(max=h - 1)
    top = _gather(pixels, ya, xa)
    top = top + (_gather(pixels, ya, xb) - top) * dx
    bottom = _gather(pixels, yb, xa)
    bottom = bottom + (_gather(pixels, yb, xb) - bottom) * dx
    bottom = torch.where((y0 + 1 < h)[:, :, None], bottom, top)  # Pillow reuses the first row past the bottom edge
    return (top + (bottom - top) * dy).to(torch.uint8)  # (UINT8) v: truncation


def cv2_warp_perspective(base: BaseImages, inverse: Tensor) -> Tensor:
    """OpenCV 3.4 ``warpPerspective(x, M, (w, h))`` (INTER_LINEAR, BORDER_CONSTANT 0) of every image and frame, then
    the crop; ``inverse`` is ``M^-1`` (destination -> source).

    OpenCV rounds each source coordinate to 1/32 pixel (``X = cvRound(32 x_src)``), reads the 2x2 neighbours of
    ``X >> 5`` with 15-bit integer weights ``(32 - fx)(32 - fy) 32 ...`` (exact: the fractions are multiples of
    1/32), counts taps outside the image as 0 and rounds: ``(sum + 2^14) >> 15``. Pixel centres are integers.

    Args:
        base: the images (see :class:`BaseImages`).
        inverse: (N, T, 3, 3) float64, same device.

    Returns:
        (N, T, 3, S, S) uint8.
    """
    cols, rows = _window(base, torch.float64)
    h = base.sizes[:, 0, None, None, None]
    w = base.sizes[:, 1, None, None, None]
    pixels = base.pixels.to(torch.int32)
    n, t, s = len(inverse), inverse.shape[1], base.side
    out = torch.empty((n, t, 3, s, s), dtype=torch.uint8, device=base.pixels.device)
    limit = float(2**31 - 1)
    for im, fr in video_frame_blocks(n, t, s):
        m = inverse[im, fr, :, :, None, None]  # (n', F, 3, 3, 1, 1)
        x, y, hb, wb = cols[im], rows[im], h[im], w[im]
        xw = m[:, :, 0, 0] * x + m[:, :, 0, 1] * y + m[:, :, 0, 2]
        yw = m[:, :, 1, 0] * x + m[:, :, 1, 1] * y + m[:, :, 1, 2]
        ww = m[:, :, 2, 0] * x + m[:, :, 2, 1] * y + m[:, :, 2, 2]
        ww = torch.where(ww != 0, 32 / ww, torch.zeros_like(ww))
        fx = torch.round((xw * ww).clamp(-limit - 1, limit)).to(torch.int64)  # cvRound: half to even
        fy = torch.round((yw * ww).clamp(-limit - 1, limit)).to(torch.int64)
        x0, y0 = fx >> 5, fy >> 5
        ax, ay = (fx & 31).to(torch.int32), (fy & 31).to(torch.int32)  # sums stay below 255 * 2^15: int32 is exact
        acc = torch.zeros((*x0.shape[:2], 3, *x0.shape[2:]), dtype=torch.int32, device=x0.device)
        for dy, dx, weight in ((0, 0, (32 - ax) * (32 - ay)), (0, 1, ax * (32 - ay)), (1, 0, (32 - ax) * ay),
                               (1, 1, ax * ay)):
            xs, ys = x0 + dx, y0 + dy
            inside = (xs >= 0) & (xs < wb) & (ys >= 0) & (ys < hb)
            tap = _gather(pixels[im], ys.clamp(0, None).clamp(max=hb - 1), xs.clamp(0, None).clamp(max=wb - 1))
            acc += torch.where(inside, weight * 32, 0)[:, :, None] * tap
        out[im, fr] = ((acc + (1 << 14)) >> 15).clamp(0, 255).to(torch.uint8)
    return out


def translate(base: BaseImages, preset: str, exact_center: bool = False) -> Tensor:
    """Frame i: ``affine(translate=(i - 7, 0))`` (CIFAR, 16 frames) or ``i - 20`` (ImageNet, 41), nearest, black fill.

    Returns (N, T, 3, S, S) uint8; integer shifts make the nearest sampling an exact pixel shift.
    """
    frames = [(0, (float(t), 0.0), 1, 0) for t in TRANSLATE_PX[preset]]
    return pil_affine(base, affine_matrices(base.sizes, frames, exact_center), bilinear=False)


def rotate(base: BaseImages, preset: str, exact_center: bool = False) -> Tensor:
    """Frame i: ``affine(angle=i - 15)`` degrees, bilinear (31 frames; frame 15 is the clean image)."""
    frames = [(a, (0.0, 0.0), 1.0, 0) for a in ROTATE_DEG[preset]]
    return pil_affine(base, affine_matrices(base.sizes, frames, exact_center), bilinear=True)


def scale(base: BaseImages, preset: str, exact_center: bool = False) -> Tensor:
    """Frame i: ``affine(scale=(2i + 70) / 100)`` (CIFAR) or ``(2.5i + 40) / 100`` (ImageNet), bilinear, crop."""
    frames = [(0, (0.0, 0.0), z, 0) for z in SCALE_FACTORS[preset]]
    return pil_affine(base, affine_matrices(base.sizes, frames, exact_center), bilinear=True)


def shear(base: BaseImages, preset: str, exact_center: bool = False) -> Tensor:
    """Frame i: ``affine(shear=i - 15)`` degrees (x-shear), bilinear, crop (31 frames)."""
    frames = [(0, (0.0, 0.0), 1.0, s) for s in SHEAR_DEG[preset]]
    return pil_affine(base, affine_matrices(base.sizes, frames, exact_center), bilinear=True)


def tilt(base: BaseImages, preset: str, identity_at_zero: bool = False) -> Tensor:
    """Frame i: the perspective tilt with phi = theta = ``0.75 (i - 15)`` (CIFAR) or ``i - 15`` degrees (ImageNet,
    on the whole Resize(256) image), OpenCV bilinear with a black border, then the crop (31 frames)."""
    homographies = tilt_homographies(base.sizes, TILT_DEG[preset], identity_at_zero)
    return cv2_warp_perspective(base, invert3x3(homographies))


def zoom_blur(base: BaseImages, preset: str, exact_center: bool = False) -> Tensor:
    """Frame 0 clean; frame i the running mean of the clean crop and ``affine(scale = 1 + 0.004 j)``, j = 1..i.

    As the reference: ToTensor images (float32 ``v / 255``) summed in order in float32, divided by ``i + 1`` and
    converted by ToPILImage (``x * 255`` truncated to uint8).

    Returns:
        (N, 31, 3, S, S) uint8.
    """
    frames = [(0, (0.0, 0.0), z, 0) for z in ZOOM_FACTORS[preset]]
    zoomed = pil_affine(base, affine_matrices(base.sizes, frames, exact_center), bilinear=True)  # (N, 30, 3, S, S)
    clean = base.crop()
    running = clean.to(torch.float32) / 255
    out = [clean]
    for i in range(1, zoomed.shape[1] + 1):  # 30 frames, a running sum: sequential by definition
        running = running + zoomed[:, i - 1].to(torch.float32) / 255
        out.append((running / (i + 1) * 255).to(torch.uint8))
    return torch.stack(out, dim=1)

"""Weather corruptions: snow, frost, fog, brightness (docs/corruptions.md §5.10-§5.13), batched.

Each random corruption draws its fields per image from the generator on the images' device; any field can be
passed in (keyword-only) to replay the reference's NumPy draws (§6).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from corruptions.color import hsv_to_rgb, rgb_to_hsv
from corruptions.filters import clipped_zoom, motion_blur_line, to_uint8, to_unit_float
from corruptions.plasma import draw_plasma, plasma_fractal, plasma_levels
from corruptions.presets import FOG_MAPSIZE, FROST_TEXTURE_SCALE, check_batch, check_field, get_params
from corruptions.textures import FROST_FILES, REFERENCE_TEXTURE_COUNT, load_frost_textures

SNOW_ANGLE_RANGE = (-135.0, -45.0)  # degrees, np.random.uniform(-135, -45): flakes fall down-ish
# cv2.cvtColor(RGB2GRAY) weights on float input; the reference passes RGB data, so they land on R, G, B.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def snow(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
         flake_noise: Tensor | None = None, angles_deg: Tensor | None = None) -> Tensor:
    """Falling snow: a zoomed, thresholded, motion-blurred flake layer added twice over a brightened image (§5.10).

    The reference writes the flake layer as an 8-bit PNG, blurs it with ImageMagick and decodes it; we apply
    the line-kernel port of ImageMagick's motion blur (§4.4) to the same 8-bit layer and round to 8 bits as
    ImageMagick does, which is within +-1 of ImageMagick 6.9 Q16 (pitfall 13). The flake layer is added
    as is and rotated by 180 degrees, as the reference does.

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (loc, scale, zoom, threshold, blur radius, blur sigma, blend).
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the flake layer and the blur angles.
        flake_noise: optional (N, H, W) float64, the layer ``N(loc, scale)`` before zooming, e.g. the
            reference's ``np.random.normal(size=(H, W), loc=loc, scale=scale)``.
        angles_deg: optional (N,) float64 motion-blur angles in degrees, reference ``uniform(-135, -45)``.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    loc, scale, zoom, threshold, radius, sigma, blend = get_params(preset, "snow", severity)
    n, _, h, w = images.shape
    device = images.device
    if flake_noise is None:
        flake_noise = loc + scale * torch.randn((n, h, w), generator=generator, dtype=torch.float64, device=device)
    else:
        flake_noise = check_field(flake_noise, "flake_noise", (n, h, w), torch.float64, device)
    if angles_deg is None:
        low, high = SNOW_ANGLE_RANGE
        angles_deg = low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64, device=device)
    else:
        angles_deg = check_field(angles_deg, "angles_deg", (n,), torch.float64, device)
    layer = clipped_zoom(flake_noise, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layer8 = (layer.clamp(0, 1) * 255).to(torch.uint8)  # the 8-bit PNG the reference hands to ImageMagick
    blurred = motion_blur_line(layer8.to(torch.float64)[:, None], radius, sigma, angles_deg)  # (N, 1, H, W)
    flakes = torch.floor(blurred + 0.5).clamp(0, 255) / 255.0  # ImageMagick writes 8 bits, rounding
    x = images.to(torch.float32) / 255  # float32, as the reference
    r, g, b = x.unbind(1)
    gray = (r * GRAY_WEIGHTS[0] + g * GRAY_WEIGHTS[1] + b * GRAY_WEIGHTS[2])[:, None]  # (N, 1, H, W) float32
    x = blend * x + (1 - blend) * torch.maximum(x, gray * 1.5 + 0.5)
    return to_uint8(x.to(torch.float64) + flakes + flakes.flip(-2, -1))


def frost(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
          texture_index: Tensor | None = None, crop_rows: Tensor | None = None, crop_cols: Tensor | None = None,
          frost_dir: str | os.PathLike | None = None) -> Tensor:
    """Blend each image with a random crop of a frost texture: ``clip(c_img * x + c_frost * crop, 0, 255)`` (§5.11).

    Textures are rescaled per preset (CIFAR x0.2, 64 px x0.3 with OpenCV bilinear, ImageNet full size) and
    cached per device (§4.5). As the reference, the texture index is drawn from 0..4, so frost6.jpg is never
    drawn (pitfall 7), and crop offsets are uniform with exclusive upper bounds.

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (image coefficient, frost coefficient).
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the texture index, then the row and the column offsets.
        texture_index: optional (N,) integers in 0..5 (index into frost1.png .. frost6.jpg), reference
            ``randint(5)``.
        crop_rows: optional (N,) integer top rows, reference ``randint(0, H_texture - H)``.
        crop_cols: optional (N,) integer left columns, reference ``randint(0, W_texture - W)``.
        frost_dir: folder holding the six texture files (not a random field); default: ``$AUGMIX_FROST_DIR``,
            else the installed imagecorruptions-imaug package (see corruptions/textures.py).

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    image_coef, frost_coef = get_params(preset, "frost", severity)
    n, _, side, _ = images.shape
    device = images.device
    textures = load_frost_textures(FROST_TEXTURE_SCALE[preset], device, frost_dir)
    heights = torch.tensor(textures.heights, device=device)
    widths = torch.tensor(textures.widths, device=device)
    if texture_index is None:
        texture_index = torch.randint(REFERENCE_TEXTURE_COUNT, (n,), generator=generator, device=device)
    else:
        texture_index = _check_int_field(texture_index, "texture_index", n, torch.zeros_like(heights[:1]),
                                         torch.full_like(heights[:1], len(FROST_FILES) - 1), device)
    row_span, col_span = heights[texture_index] - side, widths[texture_index] - side  # (N,), > 0 at every preset
    crop_rows = _offsets(crop_rows, "crop_rows", row_span, generator, device)
    crop_cols = _offsets(crop_cols, "crop_cols", col_span, generator, device)
    steps = torch.arange(side, device=device)
    rows = (crop_rows[:, None] + steps)[:, None, :, None]  # (N, 1, S, 1)
    cols = (crop_cols[:, None] + steps)[:, None, None, :]  # (N, 1, 1, S)
    channels = torch.arange(3, device=device)[None, :, None, None]
    crops = textures.stack[texture_index[:, None, None, None], channels, rows, cols]  # (N, 3, S, S) uint8 RGB
    blended = image_coef * images.to(torch.float64) + frost_coef * crops.to(torch.float64)
    return blended.clamp(0, 255).to(torch.uint8)


def fog(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
        plasma_draws: tuple[Tensor, ...] | list[Tensor] | None = None) -> Tensor:
    """Add a plasma-fractal haze and rescale: ``clip((x + a * P) * mx / (mx + a), 0, 1)`` (§5.12).

    ``mx`` is the maximum of the whole image (all pixels and channels), the map ``P`` the top-left S x S of
    a diamond-square fractal of the preset's map size (32 / 64 / 256), in float64 as the reference.

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (amplitude a, wibble decay).
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the plasma draws.
        plasma_draws: optional per-level draws, one (N, 3, k, k) float64 tensor per level k = 1, 2, ...,
            mapsize / 2, holding the reference's three ``uniform(-w, w)`` arrays (squares, diamonds,
            diamonds) of that level (see corruptions/plasma.py).

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    amplitude, decay = get_params(preset, "fog", severity)
    n, _, side, _ = images.shape
    mapsize = FOG_MAPSIZE[preset]
    if plasma_draws is None:
        plasma_draws = draw_plasma(n, mapsize, decay, generator, images.device)
    else:
        levels = plasma_levels(mapsize)
        if len(plasma_draws) != levels:
            raise ValueError(f"plasma_draws must hold {levels} levels for map size {mapsize}, got {len(plasma_draws)}")
        plasma_draws = [check_field(u, f"plasma_draws[{k}]", (n, 3, 1 << k, 1 << k), torch.float64, images.device)
                        for k, u in enumerate(plasma_draws)]
    haze = plasma_fractal(plasma_draws, decay)[:, None, :side, :side]  # (N, 1, S, S), top-left crop
    x = to_unit_float(images)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    x = x + amplitude * haze
    return to_uint8(x * peak / (peak + amplitude))


def brightness(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None) -> Tensor:
    """HSV round trip with ``V <- clip(V + dV, 0, 1)`` (§5.13), bit-identical to the scikit-image reference.

    Black pixels become grey ``dV`` (their hue and saturation are 0), as in the reference (pitfall 14).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects dV from the preset.
        preset: "cifar", "tiny" or "imagenet".
        generator: unused (deterministic corruption); accepted for a uniform signature.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    delta = get_params(preset, "brightness", severity)
    h, s, v = rgb_to_hsv(to_unit_float(images)).unbind(1)
    v = (v + delta).clamp(0, 1)
    return to_uint8(hsv_to_rgb(torch.stack((h, s, v), dim=1)))


def _offsets(value: Tensor | None, name: str, span: Tensor, generator: torch.Generator | None,
             device: torch.device) -> Tensor:
    """Crop offsets in [0, span): drawn uniformly per image, or an injected field checked to lie in [0, span]."""
    if value is None:
        u = torch.rand(span.shape, generator=generator, dtype=torch.float64, device=device)
        return (u * span).floor().to(torch.int64)  # randint(0, span): exclusive upper bound
    return _check_int_field(value, name, span.numel(), torch.zeros_like(span), span, device)


def _check_int_field(value: Tensor, name: str, n: int, low: Tensor, high: Tensor, device: torch.device) -> Tensor:
    """An injected (N,) integer field on ``device``; raise ValueError naming it if any entry is outside [low, high]."""
    field = check_field(value, name, (n,), torch.int64, device)
    bad = (field < low) | (field > high)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        allowed = f"{int(low.expand(n)[i])}..{int(high.expand(n)[i])}"
        raise ValueError(f"field {name!r}: entry {i} is {int(field[i])}, outside the valid range {allowed}")
    return field

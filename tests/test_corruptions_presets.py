"""Parameter tables of the three presets (docs/corruptions.md §3) and their validation helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corruptions import ALL_CORRUPTIONS
from corruptions.presets import (
    ELASTIC_SCALE,
    FOG_MAPSIZE,
    FROST_TEXTURE_SCALE,
    PARAMS,
    PRESETS,
    DefocusParams,
    GlassParams,
    check_batch,
    check_field,
    check_image_size,
    get_params,
)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_every_corruption_has_five_severities_in_every_preset(preset, name):
    entries = PARAMS[preset][name]
    assert len(entries) == 5
    assert [get_params(preset, name, s) for s in range(1, 6)] == list(entries)


@pytest.mark.parametrize("preset, name, severity, expected", [
    # One cell per table row of §3.1-§3.3, copied from the spec.
    ("cifar", "gaussian_noise", 4, 0.09), ("tiny", "gaussian_noise", 5, 0.18), ("imagenet", "gaussian_noise", 1, 0.08),
    ("cifar", "shot_noise", 1, 500), ("tiny", "shot_noise", 4, 30), ("imagenet", "shot_noise", 5, 3),
    ("cifar", "impulse_noise", 5, 0.07), ("tiny", "impulse_noise", 3, 0.05), ("imagenet", "impulse_noise", 4, 0.17),
    ("cifar", "defocus_blur", 4, (1, 0.2)), ("tiny", "defocus_blur", 4, (2.5, 0.01)),
    ("imagenet", "defocus_blur", 5, (10, 0.5)),
    ("cifar", "glass_blur", 4, (0.25, 1, 2)), ("tiny", "glass_blur", 4, (0.7, 2, 1)),
    ("imagenet", "glass_blur", 5, (1.5, 4, 2)),
    ("cifar", "motion_blur", 5, (9, 2.5)), ("tiny", "motion_blur", 5, (12, 3)), ("imagenet", "motion_blur", 2, (15, 5)),
    ("cifar", "snow", 3, (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9)), ("tiny", "snow", 5, (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)),
    ("imagenet", "snow", 4, (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65)),
    ("cifar", "frost", 5, (0.75, 0.45)), ("tiny", "frost", 2, (0.9, 0.4)), ("imagenet", "frost", 3, (0.7, 0.7)),
    ("cifar", "fog", 5, (1.5, 1.75)), ("tiny", "fog", 1, (0.4, 3)), ("imagenet", "fog", 3, (2.5, 1.7)),
    ("cifar", "brightness", 5, 0.3), ("tiny", "brightness", 2, 0.2), ("imagenet", "brightness", 4, 0.4),
    ("cifar", "contrast", 1, 0.75), ("tiny", "contrast", 5, 0.05), ("imagenet", "contrast", 3, 0.2),
    ("cifar", "jpeg_compression", 3, 58), ("tiny", "jpeg_compression", 5, 25), ("imagenet", "jpeg_compression", 5, 7),
    ("cifar", "speckle_noise", 4, 0.16), ("tiny", "speckle_noise", 3, 0.25), ("imagenet", "speckle_noise", 3, 0.35),
    ("cifar", "gaussian_blur", 5, 1), ("tiny", "gaussian_blur", 4, 1.25), ("imagenet", "gaussian_blur", 5, 6),
    ("cifar", "spatter", 4, (0.65, 0.1, 0.7, 0.69, 0.6, 1)), ("tiny", "spatter", 5, (0.65, 0.1, 0.5, 0.67, 0.6, 1)),
    ("imagenet", "spatter", 5, (0.67, 0.4, 1, 0.65, 1.5, 1)),
    ("cifar", "saturate", 3, (1.5, 0)), ("tiny", "saturate", 5, (30, 0.2)), ("imagenet", "saturate", 5, (20, 0.2)),
])
def test_table_cells_match_the_spec(preset, name, severity, expected):
    assert get_params(preset, name, severity) == expected


def test_multi_parameter_entries_are_named_tuples():
    assert get_params("cifar", "defocus_blur", 5) == DefocusParams(radius=1.5, alias_sigma=0.1)
    sigma, delta, iterations = get_params("imagenet", "glass_blur", 3)  # unpacks like the reference's c
    assert (sigma, delta, iterations) == (1, 2, 3)
    assert isinstance(get_params("imagenet", "glass_blur", 3), GlassParams)


@pytest.mark.parametrize("preset, lengths, ends", [
    # §3.4: float64 arange includes some endpoints; (1.06 - 1) / 0.01 = 6.000000000000005 -> 7 factors.
    ("cifar", (7, 12, 16, 21, 26), (1.06, 1.11, 1.15, 1.20, 1.25)),
    ("tiny", (7, 12, 16, 21, 26), (1.06, 1.11, 1.15, 1.20, 1.25)),
    ("imagenet", (12, 16, 11, 13, 11), (1.11, 1.15, 1.20, 1.24, 1.30)),
])
def test_zoom_factor_lists_come_from_float_arange(preset, lengths, ends):
    for severity, (n, last) in enumerate(zip(lengths, ends), start=1):
        factors = get_params(preset, "zoom_blur", severity)
        assert len(factors) == n and factors[0] == 1.0
        assert factors[-1] == pytest.approx(last, abs=1e-12)
    # Exactly the float64 arange values (1.03 is 1.0300000000000002), as the reference iterates them.
    step = 0.03 if preset == "imagenet" else 0.01
    stop = 1.31 if preset == "imagenet" else 1.26
    assert get_params(preset, "zoom_blur", 5) == tuple(np.arange(1, stop, step))


@pytest.mark.parametrize("preset, expected", [
    # §3.1-§3.3 "Elastic values spelled out"; ImageNet multiplies by 244, not 224 (kept quirk).
    ("cifar", ((0, 0, 2.56), (1.6, 6.4, 2.24), (2.56, 1.92, 1.92), (3.2, 1.28, 1.6), (3.2, 0.96, 0.96))),
    ("tiny", ((0, 0, 5.12), (3.2, 19.2, 3.84), (6.4, 5.12, 3.84), (6.4, 1.92, 1.92), (10.24, 1.92, 1.28))),
    ("imagenet", ((488, 170.8, 24.4), (488, 19.52, 48.8), (12.2, 2.44, 4.88), (17.08, 2.44, 4.88),
                  (29.28, 2.44, 4.88))),
])
def test_elastic_parameters_are_the_scaled_products(preset, expected):
    got = [tuple(get_params(preset, "elastic_transform", s)) for s in range(1, 6)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # Products are formed in float64 like the reference (244 * 0.7 is 170.79999999999998, not 170.8).
    assert get_params(preset, "elastic_transform", 2).sigma == ELASTIC_SCALE[preset] * (0.2, 0.3, 0.08)[
        ("cifar", "tiny", "imagenet").index(preset)]


@pytest.mark.parametrize("preset, sides", [
    ("cifar", (30, 28, 27, 24, 20)), ("tiny", (57, 51, 44, 38, 32)), ("imagenet", (134, 112, 89, 67, 56)),
])
def test_pixelate_sides_truncate_size_times_factor(preset, sides):
    assert tuple(get_params(preset, "pixelate", s).side for s in range(1, 6)) == sides


def test_size_constants_per_preset():
    assert dict(PRESETS) == {"cifar": 32, "tiny": 64, "imagenet": 224}
    assert dict(FOG_MAPSIZE) == {"cifar": 32, "tiny": 64, "imagenet": 256}
    assert dict(FROST_TEXTURE_SCALE) == {"cifar": 0.2, "tiny": 0.3, "imagenet": 1.0}


def test_tables_are_immutable():
    with pytest.raises(TypeError):
        PARAMS["cifar"]["contrast"] = (1, 1, 1, 1, 1)
    with pytest.raises(TypeError):
        PRESETS["huge"] = 512


@pytest.mark.parametrize("preset, size, hint", [
    ("cifar", 64, "choose preset='tiny'"), ("imagenet", 32, "choose preset='cifar'"),
    ("tiny", 100, "no preset fits this size"),
])
def test_wrong_image_size_names_the_fitting_preset(preset, size, hint):
    with pytest.raises(ValueError, match=rf"preset '{preset}' expects {PRESETS[preset]}x{PRESETS[preset]} images, "
                                         rf"got {size}x{size}; {hint}"):
        check_image_size(preset, size, size)
    check_image_size(preset, PRESETS[preset], PRESETS[preset])  # the right size passes


def test_non_square_images_are_rejected():
    with pytest.raises(ValueError, match="got 32x33"):
        check_image_size("cifar", 32, 33)


@pytest.mark.parametrize("args, match", [
    (("huge", "contrast", 1), "unknown corruption preset 'huge'"),
    (("cifar", "blur", 1), "unknown corruption 'blur'"),
    (("cifar", "contrast", 0), "severity must be an integer in 1..5, got 0"),
    (("cifar", "contrast", 6), "got 6"),
    (("cifar", "contrast", 2.0), "got 2.0"),
    (("cifar", "contrast", True), "got True"),
])
def test_get_params_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        get_params(*args)


def test_check_batch_and_check_field_name_the_problem():
    good = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    check_batch(good, 1, "cifar")
    with pytest.raises(TypeError, match="uint8"):
        check_batch(good.float(), 1, "cifar")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        check_batch(good[:, :1], 1, "cifar")
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_batch(good.numpy(), 1, "cifar")
    with pytest.raises(ValueError, match="field 'noise' must have shape"):
        check_field(np.zeros((2, 32, 32, 3)), "noise", (2, 3, 32, 32), torch.float64, "cpu")

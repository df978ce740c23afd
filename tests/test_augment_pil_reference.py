"""augment/pil_reference.py: PIL ops vs hand arithmetic and the §2.5 NumPy oracles, the §2.4 sampler
statistics, the §3.2 mixing, the §11.3 replay of the official draw order, and AugMixDataset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps
from torchvision import transforms

from augment import params
from augment import pil_reference as ref
from tests.augment_oracles import NUMPY_OPS, OP_PARAMETERS, flip_crop, pil, random_images, real_images

AFFINE_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.int64)


def _columns(values: list[int], height: int = 4) -> Image.Image:
    """RGB image whose column j holds values[j] in every row and channel."""
    row = np.array(values, dtype=np.uint8)[None, :, None]
    return pil(np.broadcast_to(row, (height, len(values), 3)))


# ---------------------------------------------------------------- ops: hand-worked cases


def test_op_registry_matches_the_shared_op_list():
    assert tuple(ref.PIL_OPS) == params.ALL_OPS


def test_posterize_keeps_the_top_bits():
    img = pil(np.full((2, 2, 3), 0b10110111, np.uint8))  # 183
    assert (_arr(ref.posterize(img, 4)) == 0b10110000).all()  # & 0xF0 = 176
    assert (_arr(ref.posterize(img, 3)) == 0b10100000).all()  # & 0xE0 = 160


def test_solarize_inverts_values_at_or_above_the_threshold():
    out = _arr(ref.solarize(_columns([0, 199, 200, 255]), 200))[0, :, 0]
    assert out.tolist() == [0, 199, 55, 0]  # 200 >= 200 -> 255 - 200; 255 -> 0


def test_translate_positive_moves_content_left_and_up_with_fill():
    img = _columns([10, 20, 30, 40])
    assert _arr(ref.translate_x(img, 1))[0, :, 0].tolist() == [20, 30, 40, 0]
    assert _arr(ref.translate_x(img, -1))[0, :, 0].tolist() == [0, 10, 20, 30]
    assert _arr(ref.translate_x(img, 2, fill=128))[0, :, 0].tolist() == [30, 40, 128, 128]
    rows = pil(np.transpose(np.asarray(img), (1, 0, 2)))  # row i holds 10 (i + 1)
    assert _arr(ref.translate_y(rows, 1))[:, 0, 1].tolist() == [20, 30, 40, 0]


def test_shear_origin_is_the_top_left_corner():
    # coef 0.5, column j = 10 j: row y samples X = x + .5 + .5 (y + .5), i.e. X' = x + .5 (y + .5).
    # Row 0: X' = x + .25 -> 10 x + 2.5 -> 10 x + 2 (last column clamps to 70).
    # Row 3: X' = x + 1.75 -> 10 x + 17.5 -> 10 x + 17; x = 5: 60 + .75 * 10 = 67; x >= 6 reads X >= 8: black.
    out = _arr(ref.shear_x(_columns([10 * j for j in range(8)]), 0.5))[..., 0]
    assert out[0].tolist() == [2, 12, 22, 32, 42, 52, 62, 70]
    assert out[3].tolist() == [17, 27, 37, 47, 57, 67, 0, 0]


def test_rotate_by_zero_is_an_exact_copy_and_positive_degrees_turn_counter_clockwise():
    x = random_images(1, 8, seed=1)[0]
    assert np.array_equal(np.asarray(ref.rotate(pil(x), 0)), x)
    assert np.array_equal(np.asarray(ref.rotate(pil(x), 90)), np.rot90(x))  # rot90 is counter-clockwise


def test_equalize_clips_the_lut_at_255():
    # One channel of 32x32 = 1024 px: 1023 at 10, one at 200. step = (1024 - 1) // 255 = 4.
    # LUT[10] = (2 + 0) // 4 = 0; LUT[200] = (2 + 1023) // 4 = 256 -> min(255, .) = 255 (uint8 wrap would give 0).
    x = np.full((32, 32, 3), 10, np.uint8)
    x[5, 7] = 200
    out = _arr(ref.equalize(pil(x)))
    assert out[5, 7].tolist() == [255, 255, 255]
    assert (np.delete(out.reshape(-1, 3), 5 * 32 + 7, axis=0) == 0).all()


def test_equalize_leaves_channels_with_one_value_or_zero_step_unchanged():
    x = np.zeros((4, 4, 3), np.uint8)
    x[..., 0] = 77  # one bin
    x[..., 1] = np.arange(16).reshape(4, 4)  # 16 px: step = (16 - 1) // 255 = 0
    x[..., 2] = 3
    assert np.array_equal(np.asarray(ref.equalize(pil(x))), x)


def test_autocontrast_stretches_each_channel_and_leaves_constant_channels():
    # Red holds 50, 100, 150: scale 2.55, offset -127.5 -> 0, trunc(127.5) = 127, 255. Green constant 77.
    x = np.zeros((1, 3, 3), np.uint8)
    x[0, :, 0] = [50, 100, 150]
    x[0, :, 1] = 77
    x[0, :, 2] = [0, 1, 2]
    out = _arr(ref.autocontrast(pil(x)))[0]
    assert out[:, 0].tolist() == [0, 127, 255]
    assert out[:, 1].tolist() == [77, 77, 77]
    assert out[:, 2].tolist() == [0, 127, 255]  # scale 127.5: 1 -> 127


def test_int_fill_is_grey_and_the_released_imagenet_fill_replays_pillows_int_ink():
    img = _columns([200] * 6)
    assert _arr(ref.translate_x(img, 3, fill=128))[0, -1].tolist() == [128, 128, 128]
    released = img.transform(img.size, Image.Transform.AFFINE, (1, 0, 3, 0, 1, 0),
                             resample=Image.Resampling.BILINEAR, fillcolor=128)  # the released script's call
    assert np.array_equal(np.asarray(ref.translate_x(img, 3, fill=ref.RELEASED_IMAGENET_FILL)), np.asarray(released))


# ---------------------------------------------------------------- ops vs the NumPy oracles of §2.5


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("name", params.ALL_OPS)
def test_op_matches_the_numpy_transcription_bit_exactly(name, size):
    images = random_images(2 if size == 32 else 1, size, seed=size) + real_images(size)
    fills = (0, 128, (10, 200, 30)) if name in AFFINE_OPS else (None,)
    for parameter in OP_PARAMETERS[name]:
        for fill in fills:
            for x in images:
                if parameter is None:
                    got, expected = ref.PIL_OPS[name](pil(x)), NUMPY_OPS[name](x)
                elif fill is None:
                    got, expected = ref.PIL_OPS[name](pil(x), parameter), NUMPY_OPS[name](x, parameter)
                else:
                    got, expected = ref.PIL_OPS[name](pil(x), parameter, fill), NUMPY_OPS[name](x, parameter, fill)
                assert np.array_equal(np.asarray(got), expected), (name, size, parameter, fill)


# ---------------------------------------------------------------- sampling (§2.2 - §2.4)

TABLE_2_4 = {  # (severity, S) -> quantity -> {value: probability}, as printed in docs/augmix.md §2.4
    (3, 32): {
        "posterize": {4: 0.828, 3: 0.172},
        "rotate": {0: 0.080, **{d: 0.115 for d in range(1, 9)}},
        "translate_x": {0: 0.289, 1: 0.323, 2: 0.323, 3: 0.065},
        "solarize": {254: 0.006, 180: 0.011, **{256 - t: 0.0135 for t in range(3, 76)}},
    },
    (1, 224): {
        "posterize": {4: 1.0},
        "rotate": {0: 0.259, 1: 0.370, 2: 0.370},
        "translate_x": {0: 0.038, **{d: 0.149 for d in range(1, 7)}, 7: 0.069},
        "solarize": {256 - t: None for t in range(2, 26)},  # only the support (231..254) is tabulated
    },
}
RANGES_2_4 = {(3, 32): {"shear_x": (0.003, 0.09), "color": (0.118, 0.64)},
              (1, 224): {"shear_x": (0.003, 0.03), "color": (0.118, 0.28)}}


@pytest.mark.parametrize("setting", list(TABLE_2_4))
def test_magnitude_distributions_match_the_table(setting):
    severity, size = setting
    levels = np.random.default_rng(0).uniform(params.LEVEL_LOW, severity, 10**6)  # float64, like the reference
    for name, table in TABLE_2_4[setting].items():
        values, counts = np.unique(params.op_magnitude(name, levels, size), return_counts=True)
        assert set(values.astype(int).tolist()) == set(table), name
        for value, count in zip(values.astype(int).tolist(), counts / len(levels), strict=True):
            if table[value] is not None:  # table rounding 0.0005 + 3 sigma of 1e6 draws (< 0.0015)
                assert count == pytest.approx(table[value], abs=0.002), (name, value)
    for name, (low, high) in RANGES_2_4[setting].items():
        magnitudes = params.op_magnitude(name, levels, size)
        assert low - 1e-3 < magnitudes.min() and magnitudes.max() < high
        assert magnitudes.min() == pytest.approx(low, abs=1e-4) and magnitudes.max() == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize("name", sorted(params.OPS_WITH_SIGN))
def test_sampled_signs_are_fair_and_levels_stay_in_range(name):
    rng = np.random.RandomState(0)
    draws = np.array([ref.sample_op_parameter(name, 3, 32, rng) for _ in range(20000)], dtype=np.float64)
    nonzero = draws[draws != 0]  # integer magnitudes can be 0 (rotate 8 %, translate 29 %, §2.4)
    assert np.mean(nonzero < 0) == pytest.approx(0.5, abs=0.02)  # sigma < 0.004 for >= 14k draws
    high = {"rotate": 8, "translate_x": 3, "translate_y": 3, "shear_x": 0.09, "shear_y": 0.09}[name]
    assert np.abs(draws).max() <= high and len(np.unique(np.abs(draws))) > 3  # a fresh level per call


def test_each_op_call_consumes_level_then_sign_draws_only():
    for name in params.ALL_OPS:
        rng, replay = np.random.RandomState(7), np.random.RandomState(7)
        ref.sample_op_parameter(name, 3, 32, rng)
        if name not in params.OPS_WITHOUT_LEVEL:
            replay.uniform(0.1, 3)
        if name in params.OPS_WITH_SIGN:
            replay.uniform()
        assert rng.random_sample() == replay.random_sample(), name


def test_op_choice_consumes_the_same_draw_as_numpy_choice_of_a_list():
    rng, official = np.random.RandomState(3), np.random.RandomState(3)
    ours = [ref.sample_op_name(params.AUGMIX_OPS, rng) for _ in range(50)]
    assert ours == [str(official.choice(list(params.AUGMIX_OPS))) for _ in range(50)]
    assert rng.random_sample() == official.random_sample()


# ---------------------------------------------------------------- mixing (§3.2)


def test_mixing_weights_are_float32_and_convex():
    rng = np.random.RandomState(0)
    for _ in range(200):
        weights, m = ref.sample_mixing_weights(3, 1.0, rng)
        assert weights.dtype == np.float32 and isinstance(m, np.float32)
        assert abs(float(weights.sum()) - 1) < 1e-6 and (weights >= 0).all() and 0 <= m <= 1


def test_mix_puts_m_on_the_chain_mixture():
    # clean 0, chains 1 and 3, w = (.25, .75), m = .5: .5 * 0 + .5 * (.25 + 2.25) = 1.25
    clean = torch.zeros(3, 2, 2)
    out = ref.mix(clean, [torch.ones(3, 2, 2), torch.full((3, 2, 2), 3.0)], np.float32([0.25, 0.75]), 0.5)
    assert torch.equal(out, torch.full((3, 2, 2), 1.25))


def test_mix_with_m_zero_is_exactly_the_clean_view():
    x = pil(real_images(32)[0])
    clean = ref.normalize_pil(x, (0.5,) * 3, (0.5,) * 3)
    chains = [ref.normalize_pil(ref.solarize(x, 128), (0.5,) * 3, (0.5,) * 3)] * 3
    assert torch.equal(ref.mix(clean, chains, np.float32([0.2, 0.3, 0.5]), np.float32(0)), clean)


def test_augmix_output_is_normalised_float32_and_not_requantised():
    x = pil(real_images(32)[1])
    out = ref.augmix_pil(x, rng=np.random.RandomState(0))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    pixels = (out * 0.5 + 0.5) * 255  # back to grey levels
    off_grid = (pixels - pixels.round()).abs() > 0.01
    assert off_grid.float().mean() > 0.5


def test_normalize_pil_matches_torchvision():
    x = pil(real_images(32)[2])
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = transforms.Normalize(mean, std)(transforms.ToTensor()(x))
    assert torch.equal(ref.normalize_pil(x, mean, std), expected)


# ---------------------------------------------------------------- replay of the official aug() (§11.3)


def _official_aug(img, rs, severity, width, depth, all_ops, mean, std):
    """Independent transcription of the official draw order (§3.1) and mixing, using only Pillow, NumPy's
    legacy generator ``rs`` and torchvision, with the official call forms (no fillcolor, (S, S) size)."""
    size = img.size[0]
    level = lambda: rs.uniform(low=0.1, high=severity)  # noqa: E731
    sign = lambda v: -v if rs.uniform() > 0.5 else v  # noqa: E731

    def affine(im, coeffs):
        return im.transform((size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)

    ops = [
        lambda im: ImageOps.autocontrast(im),
        lambda im: ImageOps.equalize(im),
        lambda im: ImageOps.posterize(im, 4 - int(level() * 4 / 10)),
        lambda im: im.rotate(sign(int(level() * 30 / 10)), resample=Image.Resampling.BILINEAR),
        lambda im: ImageOps.solarize(im, 256 - int(level() * 256 / 10)),
        lambda im: affine(im, (1, sign(level() * 0.3 / 10), 0, 0, 1, 0)),
        lambda im: affine(im, (1, 0, 0, sign(level() * 0.3 / 10), 1, 0)),
        lambda im: affine(im, (1, 0, sign(int(level() * (size / 3) / 10)), 0, 1, 0)),
        lambda im: affine(im, (1, 0, 0, 0, 1, sign(int(level() * (size / 3) / 10)))),
    ]
    if all_ops:
        ops += [lambda im, e=e: e(im).enhance(level() * 1.8 / 10 + 0.1) for e in
                (ImageEnhance.Color, ImageEnhance.Contrast, ImageEnhance.Brightness, ImageEnhance.Sharpness)]
    preprocess = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    ws = np.float32(rs.dirichlet([1.0] * width))
    m = np.float32(rs.beta(1.0, 1.0))
    mixed = torch.zeros_like(preprocess(img))
    for i in range(width):
        chain = img.copy()
        for _ in range(depth if depth > 0 else rs.randint(1, 4)):
            chain = rs.choice(ops)(chain)
        mixed += ws[i] * preprocess(chain)
    return (1 - m) * preprocess(img) + m * mixed


REPLAYS = [  # (size, severity, width, depth, all_ops, mean/std)
    (32, 3, 3, -1, False, (0.5,) * 3, (0.5,) * 3),
    (32, 3, 2, 3, True, (0.5,) * 3, (0.5,) * 3),
    (224, 1, 3, -1, False, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size,severity,width,depth,all_ops,mean,std", REPLAYS)
def test_replays_the_official_aug_draw_for_draw(seed, size, severity, width, depth, all_ops, mean, std):
    img = pil(real_images(size)[seed % 3])
    rng, official = np.random.RandomState(seed), np.random.RandomState(seed)
    got = ref.augmix_pil(img, severity, width, depth, 1.0, all_ops, 0, mean, std, rng=rng)
    expected = _official_aug(img, official, severity, width, depth, all_ops, mean, std)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert rng.random_sample() == official.random_sample()  # both consumed exactly the same draws


def test_rng_none_draws_from_numpys_global_generator_like_the_official_code():
    img = pil(real_images(32)[0])
    saved = np.random.get_state()
    try:
        np.random.seed(11)
        got = ref.AugMixPIL()(img)
    finally:
        np.random.set_state(saved)
    assert torch.equal(got, ref.augmix_pil(img, rng=np.random.RandomState(11)))


def test_bad_inputs_are_rejected_with_the_value_named():
    square = pil(random_images(1, 8)[0])
    with pytest.raises(ValueError, match="square.*12 x 8"):
        ref.augmix_pil(pil(np.zeros((8, 12, 3), np.uint8)), rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="RGB.*'L'"):
        ref.augmix_pil(square.convert("L"), rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="severity.*0"):
        ref.AugMixPIL(severity=0)
    with pytest.raises(ValueError, match="fill"):
        ref.AugMixPIL(fill=(1, 2))


# ---------------------------------------------------------------- AugMixDataset (§1, §5)


class _Spy:
    """A base transform (flip + pad-4 crop from the sample rng) that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, img, rng):
        self.calls += 1
        return flip_crop(img, rng)


def _base() -> list[tuple[Image.Image, int]]:
    return [(pil(x), label) for label, x in enumerate(real_images(32) + random_images(1, 32, seed=5))]


def _dataset(jsd=True, augmix=True, transform=flip_crop):
    return ref.AugMixDataset(_base(), transform, ref.AugMixPIL() if augmix else None, (0.5,) * 3, (0.5,) * 3, jsd)


def test_jsd_sample_is_clean_plus_two_independent_views_of_one_crop():
    spy = _Spy()
    (clean, aug1, aug2), label = _dataset(transform=spy)[(1, 1234)]
    assert spy.calls == 1 and label == 1
    # Replay: the crop draws first, then view 1, then view 2, all from RandomState(seed).
    rng = np.random.RandomState(1234)
    crop = flip_crop(_base()[1][0], rng)
    assert torch.equal(clean, ref.normalize_pil(crop, (0.5,) * 3, (0.5,) * 3))
    assert torch.equal(aug1, ref.augmix_pil(crop, rng=rng))
    assert torch.equal(aug2, ref.augmix_pil(crop, rng=rng))
    assert not torch.equal(aug1, aug2)
    # The views stay closer to their own crop than to another photograph.
    other = ref.normalize_pil(flip_crop(_base()[2][0], np.random.RandomState(0)), (0.5,) * 3, (0.5,) * 3)
    assert (aug1 - clean).abs().mean() < (aug1 - other).abs().mean()


def test_same_seed_gives_identical_samples_and_other_seeds_differ():
    data = _dataset()
    (c1, a1, b1), _ = data[(0, 99)]
    (c2, a2, b2), _ = data[(0, 99)]
    (c3, a3, b3), _ = data[(0, 100)]
    assert torch.equal(c1, c2) and torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1, a3) and not torch.equal(b1, b3)
    (c4, a4, _), _ = data[2]  # a plain index seeds with the index
    (c5, a5, _), _ = data[(2, 2)]
    assert torch.equal(c4, c5) and torch.equal(a4, a5)


def test_no_jsd_and_standard_augmentation_return_single_views():
    aug, label = _dataset(jsd=False)[(3, 7)]
    assert aug.shape == (3, 32, 32) and label == 3
    assert torch.equal(aug, ref.augmix_pil(flip_crop(_base()[3][0], rs := np.random.RandomState(7)), rng=rs))
    clean, label = _dataset(augmix=False)[(3, 7)]
    assert torch.equal(clean, ref.normalize_pil(flip_crop(_base()[3][0], np.random.RandomState(7)), (.5,) * 3,
                                                (.5,) * 3))
    assert len(_dataset()) == 4


def test_dataloader_batches_do_not_depend_on_the_number_of_workers():
    data = _dataset()
    sampler = [(i, 1000 + 17 * i) for i in (3, 0, 2, 1)]

    def batches(num_workers):
        loader = torch.utils.data.DataLoader(data, batch_size=2, sampler=sampler, num_workers=num_workers)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 2
    for (views_s, labels_s), (views_p, labels_p) in zip(serial, parallel, strict=True):
        assert torch.equal(labels_s, labels_p) and [v.shape for v in views_s] == [(2, 3, 32, 32)] * 3
        assert all(torch.equal(s, p) for s, p in zip(views_s, views_p, strict=True))


def test_dataset_and_backend_are_picklable_and_validate_their_inputs():
    augmix = pickle.loads(pickle.dumps(ref.AugMixPIL(severity=1, fill=128)))
    assert (augmix.severity, augmix.fill) == (1, 128)
    with pytest.raises(ValueError, match="mean"):
        ref.AugMixDataset(_base(), None, ref.AugMixPIL(), (0.4914, 0.4822, 0.4465), (0.5,) * 3)
    with pytest.raises(ValueError, match="index 0.*2\\*\\*32.*4294967296"):
        _dataset()[(0, 2**32)]

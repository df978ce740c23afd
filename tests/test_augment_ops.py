"""augment/ops.py: every batched tensor op equals its Pillow twin (augment/pil_reference.py) pixel for pixel on real
photographs and random images at 32 and 224 px, with per-sample parameters; edge cases of §2.5; apply_ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment import ops
from augment import pil_reference as ref
from augment.params import ALL_OPS, AUGMIX_OPS
from tests.augment_oracles import OP_PARAMETERS, pil, random_images, real_images

# Beyond the AugMix ranges of OP_PARAMETERS: identities, the far ends, extrapolating enhance factors (clipped),
# quarter turns and fractional angles (PIL's special cases go through the same transform).
EXTRA_PARAMETERS: dict[str, tuple] = {
    "posterize": (8,), "solarize": (256, 0), "rotate": (90, 180, -270, 359, 12.5, -7.25),
    "shear_x": (0.0, 1.3), "shear_y": (-1.3,), "translate_x": (-40, 31, 2.5), "translate_y": (32, -15, -0.75),
    "color": (0.0, 1.5), "contrast": (0.0, 1.5), "brightness": (0.0, 1.5), "sharpness": (0.0, 1.5),
}
AFFINE = sorted(ops.AFFINE_OPS)


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    # Test-sized batches are dispatch-bound: with two OpenMP threads on a busy 2-core machine every small kernel
    # waits at a barrier, which made this module ~8x slower. Restored afterwards for the other modules.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(arrays: list[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 arrays -> (B, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


def _pil_batch(name: str, arrays: list[np.ndarray], parameters: list, fill=0) -> np.ndarray:
    """The PIL backend's op on each (image, parameter) pair: (B, H, W, 3) uint8."""
    return np.stack([np.asarray(ref.apply_op(pil(a), name, p, fill)) for a, p in zip(arrays, parameters)])


def _agreement(ours: np.ndarray, theirs: np.ndarray) -> str:
    diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
    return f"exact on {np.mean(diff == 0):.6%} of values, within 1 on {np.mean(diff <= 1):.6%}, max diff {diff.max()}"


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("name", ALL_OPS)
def test_op_matches_pil_bit_for_bit_with_per_sample_parameters(name, size):
    # Every (image, parameter) pair of the sweep is one sample of ONE batched call, so each sample has its own
    # parameter. Pillow is the ground truth; we hold ourselves to exact equality (stricter than 99 % of values
    # within one grey level), and the failure message reports the agreement.
    images = real_images(size) + random_images(2, size, seed=size)
    sweep = OP_PARAMETERS[name] + EXTRA_PARAMETERS.get(name, ())
    if size == 224:
        images, sweep = images[:2] + images[3:4], sweep[::2]  # keep the 224 px sweep (PIL side) fast
    fills = (0, 128, (255, 0, 64)) if name in ops.AFFINE_OPS else (None,)
    for fill in fills:
        arrays = [a for a in images for _ in sweep]
        parameters = [p for _ in images for p in sweep]
        batch = _batch(arrays)
        if name in ("autocontrast", "equalize"):
            ours = ops.OPS[name](batch)
        elif fill is None:
            ours = ops.OPS[name](batch, torch.tensor(parameters, dtype=torch.float64))
        else:
            ours = ops.OPS[name](batch, torch.tensor(parameters, dtype=torch.float64), fill)
        theirs = _pil_batch(name, arrays, parameters, 0 if fill is None else fill)
        assert np.array_equal(_hwc(ours), theirs), f"{name} fill={fill}: {_agreement(_hwc(ours), theirs)}"


def test_equalize_clips_the_table_at_255():
    # 32x32 channel: 1023 pixels at 0 and one at 255. Bins: h[0] = 1023, h[255] = 1 (the last non-empty bin),
    # step = (1024 - 1) // 255 = 4; LUT[255] = (4 // 2 + 1023) // 4 = 1025 // 4 = 256 -> clipped to 255;
    # LUT[0] = (2 + 0) // 4 = 0.
    image = np.zeros((32, 32, 3), np.uint8)
    image[5, 7] = 255
    out = _hwc(ops.equalize(_batch([image])))[0]
    assert out[5, 7].tolist() == [255, 255, 255] and out.sum() == 3 * 255
    assert np.array_equal(out, np.asarray(ref.equalize(pil(image))))


def test_equalize_and_autocontrast_leave_flat_or_two_level_degenerate_channels_alone():
    # Channel 0 constant 9: one bin -> unchanged by both. Channel 1 holds 3 and 200 on 2 of 16 pixels
    # and 100 elsewhere: autocontrast maps [3, 200] to [0, 255] (100 -> trunc(97 * 255 / 197) = 125).
    image = np.full((4, 4, 3), 9, np.uint8)
    image[..., 1] = 100
    image[0, 0, 1], image[0, 1, 1] = 3, 200
    stretched = _hwc(ops.autocontrast(_batch([image])))[0]
    assert (stretched[..., 0] == 9).all()
    assert stretched[0, 0, 1] == 0 and stretched[0, 1, 1] == 255 and stretched[2, 2, 1] == 125
    assert (_hwc(ops.equalize(_batch([image])))[0][..., 0] == 9).all()


def test_translate_moves_content_and_fills_per_channel():
    # Column j holds 10 (j + 1). translate_x by +1: output column x copies input column x + 1, the last column is
    # uncovered; by -2: two columns of fill enter on the left.
    image = np.broadcast_to((10 * np.arange(1, 5, dtype=np.uint8))[None, :, None], (3, 4, 3)).copy()
    batch = _batch([image, image])
    out = _hwc(ops.translate_x(batch, torch.tensor([1.0, -2.0]), fill=(1, 2, 3)))
    assert out[0, 0, :, 0].tolist() == [20, 30, 40, 1] and out[0, 0, 3].tolist() == [1, 2, 3]
    assert out[1, 0, :, 2].tolist() == [3, 3, 10, 20]


def test_integer_shift_equals_the_general_warp_including_whole_shifts_out_of_the_image():
    images = _batch(random_images(6, 16, seed=2))
    columns = torch.tensor([0, 1, -3, 15, -16, 40])
    rows = torch.tensor([2, 0, -1, -15, 16, 0])
    coeffs = torch.stack([torch.ones(6), torch.zeros(6), columns, torch.zeros(6), torch.ones(6), rows], 1).double()
    for fill in (0, (9, 8, 7)):
        assert torch.equal(ops._shift(images, columns, rows, fill), ops.warp(images, coeffs, fill))


def test_rotation_by_quarter_turns_is_an_exact_permutation():
    image = random_images(1, 32, seed=5)[0]
    batch = _batch([image] * 4)
    out = _hwc(ops.rotate(batch, torch.tensor([0.0, 90.0, 180.0, -90.0])))
    assert np.array_equal(out[0], image)
    assert np.array_equal(out[1], np.rot90(image, 1))  # counter-clockwise as displayed
    assert np.array_equal(out[2], image[::-1, ::-1])
    assert np.array_equal(out[3], np.rot90(image, -1))


@pytest.mark.parametrize("step", [ops.apply_ops, ops.apply_ops_grouped], ids=["fused", "grouped"])
def test_apply_ops_gives_every_sample_its_own_op_and_parameter(step):
    names = ALL_OPS
    generator = torch.Generator().manual_seed(3)
    images = _batch(real_images(32) + random_images(5, 32, seed=1)).repeat(8, 1, 1, 1)  # 64 samples
    n = images.shape[0]
    op_index = torch.randint(len(names) + 1, (n,), generator=generator)  # len(names): unchanged
    sweep = {name: OP_PARAMETERS[name] + EXTRA_PARAMETERS.get(name, ()) for name in names}
    params = torch.tensor([sweep[names[k]][i % len(sweep[names[k]])] or 0.0 if k < len(names) else 0.0
                           for i, k in enumerate(op_index.tolist())], dtype=torch.float64)
    out = _hwc(step(images, op_index, params, names, fill=128))
    arrays = _hwc(images)
    for i, k in enumerate(op_index.tolist()):
        if k == len(names):
            assert np.array_equal(out[i], arrays[i]), f"sample {i}: identity"
            continue
        parameter = None if names[k] in ("autocontrast", "equalize") else params[i].item()
        theirs = np.asarray(ref.apply_op(pil(arrays[i]), names[k], parameter, 128))
        assert np.array_equal(out[i], theirs), f"sample {i}: {names[k]}({parameter})"


@pytest.mark.parametrize("step", [ops.apply_ops, ops.apply_ops_grouped], ids=["fused", "grouped"])
def test_apply_ops_with_only_the_identity_returns_the_images(step):
    images = _batch(random_images(6, 32))
    out = step(images, torch.full((6,), len(AUGMIX_OPS)), torch.zeros(6), AUGMIX_OPS)
    assert torch.equal(out, images)


def test_ops_keep_shape_dtype_and_accept_a_scalar_parameter():
    images = _batch(random_images(3, 16))
    for name, op in ops.OPS.items():
        out = op(images) if name in ("autocontrast", "equalize") else op(images, 0.5 if name != "posterize" else 4)
        assert out.shape == images.shape and out.dtype == torch.uint8, name


def test_bad_inputs_name_what_was_expected():
    images = _batch(random_images(2, 8))
    with pytest.raises(ValueError, match="uint8"):
        ops.rotate(images.float(), torch.zeros(2))
    with pytest.raises(ValueError, match="one parameter per sample"):
        ops.solarize(images, torch.zeros(3))
    with pytest.raises(ValueError, match="fill"):
        ops.shear_x(images, torch.zeros(2), fill=300)
    for step in (ops.apply_ops, ops.apply_ops_grouped):
        with pytest.raises(ValueError, match="unknown AugMix op.*blur"):
            step(images, torch.zeros(2, dtype=torch.int64), torch.zeros(2), ("blur",))


@pytest.mark.gpu
def test_ops_on_cuda_equal_the_cpu_ops():
    images = _batch(real_images(32) + random_images(5, 32)).repeat(4, 1, 1, 1)
    generator = torch.Generator().manual_seed(0)
    op_index = torch.randint(len(ALL_OPS) + 1, (images.shape[0],), generator=generator)
    params = torch.rand(images.shape[0], generator=generator, dtype=torch.float64)
    params = torch.where(op_index == ALL_OPS.index("rotate"), (params * 60 - 30).trunc(), params)
    params = torch.where(op_index == ALL_OPS.index("posterize"), (params * 4 + 1).trunc(), params)
    params = torch.where(op_index == ALL_OPS.index("solarize"), (params * 256).trunc(), params)
    cpu = ops.apply_ops(images, op_index, params, ALL_OPS, fill=128)
    cuda = ops.apply_ops(images.cuda(), op_index.cuda(), params.cuda(), ALL_OPS, fill=128)
    assert cuda.device.type == "cuda" and torch.equal(cuda.cpu(), cpu)

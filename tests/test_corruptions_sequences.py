"""-P sequences (corruptions/sequences.py, sequences_geometry.py): shapes, seeding, hand-checked frames, and agreement
with per-image PIL / OpenCV / scikit-image / SciPy transcriptions of the reference scripts on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corruptions import sequences as P
from corruptions.color import hsv_to_rgb, rgb_to_hsv
from corruptions.sequences_geometry import (
    affine_matrices,
    base_images,
    cv2_warp_perspective,
    invert3x3,
    tilt_homographies,
)
from tests.perturbation_oracles import (
    brightness_reference,
    center_crop,
    forward_affine,
    gaussian_blur_reference,
    geometric_reference,
    motion_blur_reference,
    photo_cifar,
    photo_imagenet,
    snow_reference,
    spatter_reference,
    tilt_matrix,
    to_canvas,
    to_hwc,
    torchvision_inverse,
)

PRESETS = ("cifar", "imagenet")
RANDOM = ("gaussian_noise", "shot_noise", "speckle_noise", "snow", "spatter")
GEOMETRIC = ("translate", "rotate", "scale", "shear", "tilt", "zoom_blur")
_CACHE: dict[tuple[str, str], torch.Tensor] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Intra-op threads off while this module runs: the frames are small and on a shared 2-core machine OpenMP
    barriers cost 10-30x (0.3 s vs 10 s for 31 Gaussian blurs at 224 px, measured); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cifar() -> np.ndarray:
    return photo_cifar(2)  # (2, 32, 32, 3): astronaut, chelsea


@pytest.fixture(scope="module")
def imagenet() -> np.ndarray:
    return photo_imagenet()[0]  # astronaut cut to 512x400, Resize(256) -> 327x256: the crop starts at row 52


def as_batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).contiguous()  # (N,H,W,3) -> (N,3,H,W), a copy


def videos(preset: str, perturbation: str, cifar: np.ndarray, imagenet: np.ndarray) -> torch.Tensor:
    """Each (preset, perturbation) computed once per module with seed 0 (ImageNet: one 327x256 photo)."""
    if (preset, perturbation) not in _CACHE:
        images = as_batch(cifar) if preset == "cifar" else as_batch(imagenet[None])
        _CACHE[preset, perturbation] = P.make_sequences(images, perturbation, preset,
                                                        generator=torch.Generator().manual_seed(0))
    return _CACHE[preset, perturbation]


def assert_close(ours: np.ndarray, reference: np.ndarray, max_diff: int = 0, max_fraction: float = 0.0) -> None:
    diff = np.abs(ours.astype(np.int64) - reference.astype(np.int64))
    assert ours.shape == reference.shape
    assert diff.max() <= max_diff, f"max |diff| {diff.max()} > {max_diff}"
    assert (diff > 0).mean() <= max_fraction, f"{(diff > 0).mean():.4%} of values differ"


def test_perturbation_sets_follow_the_spec():
    # §8.1: 10 test + 4 validation; the CIFAR script averages spatter where the benchmark has snow.
    assert len(P.IMAGENET_P_TEST) == 10 and len(P.IMAGENET_P_VALIDATION) == 4 and len(P.PERTURBATIONS) == 14
    assert set(P.CIFAR_P_SCRIPT) ^ set(P.CIFAR_P_BENCHMARK) == {"spatter", "snow"}
    assert P.DIFFICULTY_VARIANTS == ("gaussian_noise_2", "gaussian_noise_3", "shot_noise_2", "shot_noise_3",
                                     "speckle_noise_2", "speckle_noise_3")
    assert all(P.is_noise_perturbation(n) for n in P.NOISE_PERTURBATIONS + P.DIFFICULTY_VARIANTS)
    assert not any(P.is_noise_perturbation(n) for n in set(P.PERTURBATIONS) - set(P.NOISE_PERTURBATIONS))


def test_frame_counts_are_the_released_ones():
    # docs/corruptions.md §8.2: 31 frames, except CIFAR-P motion_blur (21) and translate (16),
    # ImageNet-P translate (41);
    # difficulty variants keep their base length
    short = {("cifar", "motion_blur"): 21, ("cifar", "translate"): 16, ("imagenet", "translate"): 41}
    for preset in ("cifar", "imagenet"):
        for name in P.ALL_PERTURBATION_NAMES:
            base = P.resolve_perturbation(name)[0]
            assert P.num_frames(name, preset) == short.get((preset, base), 31), (preset, name)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("perturbation", P.PERTURBATIONS)
def test_every_perturbation_keeps_shape_dtype_device_and_seed(perturbation, preset, cifar, imagenet):
    out = videos(preset, perturbation, cifar, imagenet)
    side = {"cifar": 32, "imagenet": 224}[preset]
    assert out.shape == (2 if preset == "cifar" else 1, P.num_frames(perturbation, preset), 3, side, side)
    assert out.dtype == torch.uint8 and out.device.type == "cpu"
    if preset == "cifar" or perturbation == "gaussian_noise":  # ImageNet re-runs kept to one (test budget)
        images = as_batch(cifar) if preset == "cifar" else as_batch(imagenet[None])
        again = P.make_sequences(images, perturbation, preset, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out, again)
        if perturbation in RANDOM:
            other = P.make_sequences(images, perturbation, preset, generator=torch.Generator().manual_seed(1))
            assert not torch.equal(out, other)
    assert len(torch.unique(out.flatten(2).float().mean(-1))) > 1  # frames are not all the same


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("perturbation", GEOMETRIC)
def test_geometric_sequences_match_pil_and_opencv_per_frame(perturbation, preset, cifar, imagenet):
    # Affine frames: the reference's PIL call per frame with torchvision 0.2's matrix; bit-exact.
    # Tilt: OpenCV 3.4's warpPerspective = coordinates rounded to 1/32 px + OpenCV's fixed-point remap.
    images = cifar if preset == "cifar" else imagenet[None]
    ours = to_hwc(videos(preset, perturbation, cifar, imagenet))
    if perturbation == "tilt":
        reference = np.stack([tilt_fixed_point_reference(image, preset) for image in images])
    else:
        reference = np.stack([geometric_reference(image, perturbation, preset) for image in images])
    assert_close(ours, reference)


def tilt_fixed_point_reference(image: np.ndarray, preset: str) -> np.ndarray:
    """(31, S, S, 3): OpenCV 3.4's warpPerspective pipeline built from OpenCV's own pieces: the inverse homography
    in NumPy, source coordinates rounded to 1/32 pixel (cvRound) into CV_16SC2 + CV_16UC1 maps, cv2.remap."""
    import cv2

    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for i in range(31):
        inv = np.linalg.inv(tilt_matrix(w, h, 0.75 * (i - 15) if preset == "cifar" else i - 15))
        den = inv[2, 0] * xs + inv[2, 1] * ys + inv[2, 2]
        fx = np.rint((inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]) / den * 32).astype(np.int64)
        fy = np.rint((inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]) / den * 32).astype(np.int64)
        coarse = np.stack([fx >> 5, fy >> 5], -1).astype(np.int16)
        fine = ((fy & 31) * 32 + (fx & 31)).astype(np.uint16)
        out = cv2.remap(image, coarse, fine, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        frames.append(center_crop(out, {"cifar": 32, "imagenet": 224}[preset]))
    return np.stack(frames)


def test_tilt_stays_close_to_the_installed_opencv(cifar):
    # OpenCV >= 4.11 interpolates warpPerspective in floating point, so it differs from the 3.4 fixed point by a few
    # grey levels at edges; the mean difference stays small.
    from tests.perturbation_oracles import tilt_reference

    ours = to_hwc(P.make_sequences(as_batch(cifar), "tilt", "cifar"))
    reference = np.stack([[tilt_reference(image, 0.75 * (i - 15)) for i in range(31)] for image in cifar])
    diff = np.abs(ours.astype(int) - reference.astype(int))
    assert diff.mean() < 0.6 and diff.max() <= 8


def test_affine_matrices_are_the_inverse_of_the_documented_forward_map():
    sizes = torch.tensor([[32, 32], [327, 256]])
    frames = [(-15, (0.0, 0.0), 1.0, 0), (0, (3.0, 0.0), 1.0, 0), (0, (0.0, 0.0), 0.4, 0), (0, (0.0, 0.0), 1.0, 12)]
    ours = affine_matrices(sizes, frames).numpy()
    for n, (h, w) in enumerate(sizes.tolist()):
        for t, (angle, shift, scale, shear) in enumerate(frames):
            exact = np.linalg.inv(forward_affine(w, h, angle, shift, scale, shear))[:2].ravel()
            np.testing.assert_allclose(ours[n, t], exact, rtol=0, atol=1e-9)
            assert ours[n, t].tolist() == torchvision_inverse(w, h, angle, shift, scale, shear)  # same doubles


def test_translate_frame_i_is_the_clean_image_shifted_by_i_minus_7(cifar):
    out = to_hwc(P.make_sequences(as_batch(cifar), "translate", "cifar"))
    for i in range(16):
        shift = i - 7  # content moves right by `shift` px; the uncovered columns are black
        expected = np.zeros_like(cifar)
        if shift >= 0:
            expected[:, :, shift:] = cifar[:, :, :32 - shift]
        else:
            expected[:, :, :shift] = cifar[:, :, -shift:]
        np.testing.assert_array_equal(out[:, i], expected)


@pytest.mark.parametrize("preset", PRESETS)
def test_rotate_frame_15_is_the_clean_image(preset, cifar, imagenet):
    # angle 0, scale 1: Pillow's matrix is the identity, so every output pixel centre reads its own input pixel.
    out = videos(preset, "rotate", cifar, imagenet)
    clean = as_batch(cifar) if preset == "cifar" else as_batch(center_crop(imagenet, 224)[None])
    assert torch.equal(out[:, 15], clean)
    assert not torch.equal(out[:, 14], clean)


def test_brightness_frame_15_is_the_clean_image_up_to_the_hsv_round_trip(cifar, imagenet):
    for preset in PRESETS:
        out = videos(preset, "brightness", cifar, imagenet)
        clean = as_batch(cifar) if preset == "cifar" else as_batch(center_crop(imagenet, 224)[None])
        x = clean.double() / 255
        round_trip = (hsv_to_rgb(rgb_to_hsv(x)) * 255).to(torch.uint8)  # V + 0: only float error, then truncation
        assert torch.equal(out[:, 15], round_trip)
        assert (out[:, 15].int() - clean.int()).abs().max() <= 1
        assert out[:, 0].float().mean() < clean.float().mean() < out[:, 30].float().mean()  # darker -> brighter


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("perturbation", ["brightness", "gaussian_blur", "motion_blur"])
def test_photometric_sequences_match_scikit_image_scipy_and_the_motion_blur_port(perturbation, preset, cifar,
                                                                                   imagenet):
    images = cifar if preset == "cifar" else center_crop(imagenet, 224)[None]
    ours = to_hwc(videos(preset, perturbation, cifar, imagenet))
    if perturbation == "brightness":
        reference = [[brightness_reference(x, d) for d in P.BRIGHTNESS_DELTAS[preset]] for x in images]
    elif perturbation == "gaussian_blur":
        sigmas, truncate = P.GAUSSIAN_BLUR[preset]
        reference = [[gaussian_blur_reference(x, s, truncate) for s in sigmas] for x in images]
    else:
        radius, sigma, angles = P.MOTION[preset]
        reference = [[motion_blur_reference(x, radius, sigma, a) for a in angles] for x in images]
    assert_close(ours, np.asarray(reference), max_diff=1, max_fraction=0.001)  # spec: within 1 grey level


@pytest.mark.parametrize("preset", PRESETS)
def test_snow_and_spatter_replay_the_reference_loops_with_injected_layers(preset, cifar, imagenet):
    images = cifar if preset == "cifar" else center_crop(imagenet, 224)[None]
    canvas = as_batch(cifar) if preset == "cifar" else as_batch(imagenet[None])
    rng = np.random.RandomState(0)
    s = images.shape[1]
    flakes = rng.normal(size=(len(images), s, s), loc=0.05, scale=0.3)  # one flake layer per video
    p = P.SPATTER[preset]
    liquid = rng.normal(size=(len(images), s, s), loc=p.loc, scale=p.scale)
    ours = to_hwc(P.make_sequences(canvas, "snow", preset, flake_noise=torch.from_numpy(flakes)))
    assert_close(ours, np.stack([snow_reference(x, f, preset) for x, f in zip(images, flakes)]), 1, 0.001)
    ours = to_hwc(P.make_sequences(canvas, "spatter", preset, liquid_noise=torch.from_numpy(liquid)))
    assert_close(ours, np.stack([spatter_reference(x, f, preset) for x, f in zip(images, liquid)]), 1, 0.001)


def test_snow_without_flakes_is_the_brightened_image_in_every_frame(cifar):
    out = P.make_sequences(as_batch(cifar), "snow", "cifar", flake_noise=torch.zeros(2, 32, 32, dtype=torch.float64))
    x = cifar / 255.
    gray = (np.float32(x) @ np.float32([0.299, 0.587, 0.114]))[..., None] * np.float32(1.5) + np.float32(0.5)
    expected = np.uint8(np.clip(0.85 * x + (1 - 0.85) * np.maximum(x, gray), 0, 1) * 255)  # §5.10 step 5
    for i in range(31):
        assert_close(to_hwc(out)[:, i], expected, max_diff=1, max_fraction=0.002)
    assert torch.equal(out[:, 0], out[:, 30])


@pytest.mark.parametrize("name", P.NOISE_PERTURBATIONS)
def test_noise_frame_0_is_clean_and_the_rest_replay_injected_fields(name, cifar):
    clean = as_batch(cifar)
    rng = np.random.RandomState(1)
    x64 = cifar.transpose(0, 3, 1, 2)[:, None] / 255.  # (N, 1, 3, 32, 32)
    level = P.NOISE_LEVELS["cifar"][name][1]  # difficulty 2
    if name == "gaussian_noise":  # torch in the reference: float32 ToTensor image plus float32 noise
        field = np.float32(level) * rng.normal(size=(2, 30, 3, 32, 32)).astype(np.float32)
        x32 = cifar.transpose(0, 3, 1, 2)[:, None].astype(np.float32) / np.float32(255)
        expected = (np.clip(x32 + field, 0, 1) * np.float32(255)).astype(np.uint8)
        kwargs = {"noise": torch.from_numpy(field)}
    elif name == "shot_noise":
        field = rng.poisson(np.broadcast_to(x64, (2, 30, 3, 32, 32)) * level).astype(np.float64)
        expected = np.uint8(255 * np.clip(field / level, 0, 1))
        kwargs = {"counts": torch.from_numpy(field)}
    else:
        field = rng.normal(size=(2, 30, 3, 32, 32), scale=level)
        expected = np.uint8(255 * np.clip(x64 + x64 * field, 0, 1))
        kwargs = {"noise": torch.from_numpy(field)}
    out = P.make_sequences(clean, f"{name}_2", "cifar", **kwargs)
    assert torch.equal(out[:, 0], clean)
    np.testing.assert_array_equal(out[:, 1:].numpy(), expected)
    drawn = P.make_sequences(clean, name, "cifar", difficulty=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(drawn[:, 0], clean)
    assert all(not torch.equal(drawn[:, i], clean) for i in range(1, 31))
    assert not torch.equal(drawn[:, 1], drawn[:, 2])
    mild = P.make_sequences(clean, name, "cifar", generator=torch.Generator().manual_seed(0))
    assert (mild[:, 1:].float() - clean[:, None].float()).abs().mean() < (
        drawn[:, 1:].float() - clean[:, None].float()).abs().mean()  # difficulty 3 is noisier than 1


def test_zoom_blur_starts_clean_and_averages_zoomed_frames(cifar, imagenet):
    for preset in PRESETS:
        out = videos(preset, "zoom_blur", cifar, imagenet)
        clean = as_batch(cifar) if preset == "cifar" else as_batch(center_crop(imagenet, 224)[None])
        assert torch.equal(out[:, 0], clean)
        assert (out[:, 30].float() - clean.float()).abs().mean() > (out[:, 1].float() - clean.float()).abs().mean()


def test_tilt_quirk_and_its_correction(cifar):
    base = base_images(as_batch(cifar), "cifar")
    fixed = P.make_sequences(as_batch(cifar), "tilt", "cifar", tilt_identity_at_zero=True)
    assert torch.equal(fixed[:, 15], as_batch(cifar))  # phi = theta = 0 with z = 0: the identity
    # The reference lifts pixels to z = 1: at zero angle the homography scales by f / (f + 1) about (16, 16);
    # f = sqrt(32^2 + 32^2) = 45.2548, so k = 45.2548 / 46.2548 = 0.97838.
    h = tilt_homographies(base.sizes, [0.0])[0, 0].numpy()
    k = np.sqrt(2048) / (np.sqrt(2048) + 1)
    np.testing.assert_allclose(h / h[2, 2], [[k, 0, 16 * (1 - k)], [0, k, 16 * (1 - k)], [0, 0, 1]], atol=1e-12)
    quirk = videos("cifar", "tilt", cifar, None)[:, 15]
    shrink = cv2_warp_perspective(base, invert3x3(torch.from_numpy(np.tile(h, (2, 1, 1, 1)))))[:, 0]
    assert torch.equal(quirk, shrink) and not torch.equal(quirk, as_batch(cifar))


def test_imagenet_canvas_of_different_sizes_matches_single_images():
    # Two Resize(256) photos (327x256 and 256x384) on one 327x384 canvas: every image keeps its own centre, crop
    # and black border, so the batch equals the images run one by one and the PIL reference.
    photos = photo_imagenet()
    canvas, sizes = to_canvas(photos)
    batch = to_hwc(P.make_sequences(canvas, "scale", "imagenet", sizes=sizes))
    for k, photo in enumerate(photos):
        np.testing.assert_array_equal(batch[k], geometric_reference(photo, "scale", "imagenet"))
    crops = P.make_sequences(canvas, "brightness", "imagenet", sizes=sizes)[:, 15]
    assert (crops.int() - torch.stack([as_batch(center_crop(p, 224)[None])[0] for p in photos]).int()).abs().max() <= 1


def test_spatter_layer_is_smeared_down_like_numpy_convolve():
    layer = torch.rand(2, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for kernel in (P.SPATTER["cifar"].smear, P.SPATTER["imagenet"].smear):
        expected = np.apply_along_axis(lambda col, k=kernel: np.convolve(col, np.array(k), mode="same"), 1,
                                       layer.numpy())
        np.testing.assert_allclose(P.smear_down(layer, kernel).numpy(), expected, rtol=0, atol=1e-15)
    # [0.2, 0.8] by hand on the column (1, 2, 3): (0.2, 0.2*2 + 0.8*1, 0.2*3 + 0.8*2) = (0.2, 1.2, 2.2)
    column = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    np.testing.assert_allclose(P.smear_down(column, (0.2, 0.8)).numpy().ravel(), [0.2, 1.2, 2.2])


def test_corrected_affine_centre_is_an_option(cifar):
    reference = videos("cifar", "rotate", cifar, None)
    centred = P.make_sequences(as_batch(cifar), "rotate", "cifar", exact_affine_center=True)
    assert torch.equal(centred[:, 15], reference[:, 15]) and not torch.equal(centred[:, 0], reference[:, 0])


@pytest.mark.parametrize("call, message", [
    (lambda x: P.make_sequences(x, "blur", "cifar"), "unknown perturbation 'blur'"),
    (lambda x: P.make_sequences(x, "rotate", "tiny"), "unknown -P preset 'tiny'"),
    (lambda x: P.make_sequences(x.float(), "rotate", "cifar"), "uint8"),
    (lambda x: P.make_sequences(x[:, :, :16], "rotate", "cifar"), "expects 32x32 images"),
    (lambda x: P.make_sequences(torch.zeros(1, 3, 224, 224, dtype=torch.uint8), "rotate", "imagenet"),
     "Resize(256)"),
    (lambda x: P.make_sequences(torch.zeros(2, 3, 256, 300, dtype=torch.uint8), "rotate", "imagenet",
                                sizes=torch.tensor([[256, 300]])), "sizes must have shape (2, 2)"),
    (lambda x: P.make_sequences(x, "rotate", "cifar", difficulty=2), "only for the noise perturbations"),
    (lambda x: P.make_sequences(x, "shot_noise_2", "cifar", difficulty=3), "already names difficulty 2"),
    (lambda x: P.make_sequences(x, "rotate", "cifar", noise=torch.zeros(1)), "rotate takes no field(s) noise"),
    (lambda x: P.make_sequences(x, "gaussian_noise", "cifar", noise=torch.zeros(2, 31, 3, 32, 32)),
     "field 'noise' must have shape (2, 30, 3, 32, 32)"),
])
def test_bad_input_raises_a_clear_error(call, message, cifar):
    with pytest.raises((ValueError, TypeError)) as info:
        call(as_batch(cifar))
    assert message in str(info.value)


@pytest.mark.gpu
@pytest.mark.parametrize("perturbation", ["gaussian_noise", "rotate", "tilt", "brightness", "snow", "spatter",
                                          "zoom_blur", "motion_blur"])
def test_cuda_matches_cpu(perturbation, cifar, imagenet):
    canvas = as_batch(imagenet[None])
    fields = {"snow": {"flake_noise": torch.randn(1, 224, 224, dtype=torch.float64) * 0.3 + 0.05},
              "spatter": {"liquid_noise": torch.randn(1, 224, 224, dtype=torch.float64) * 0.27 + 0.65}}
    if perturbation == "gaussian_noise":
        fields[perturbation] = {"noise": torch.randn(1, 30, 3, 224, 224) * 0.03}
    kwargs = fields.get(perturbation, {})
    cpu = P.make_sequences(canvas, perturbation, "imagenet", **kwargs)
    gpu = P.make_sequences(canvas.cuda(), perturbation, "imagenet", **{k: v.cuda() for k, v in kwargs.items()})
    assert gpu.device.type == "cuda"
    assert (gpu.cpu().int() - cpu.int()).abs().max() <= 1

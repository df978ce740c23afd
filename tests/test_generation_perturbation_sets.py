"""-P sets (generation/perturbation_sets.py): released layouts, per-chunk seeding, resume after an interruption, and
the CIFAR-P bytes pinned to those written before generation/ was split out of corruptions/."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from corruptions.chunks import perturbation_chunk_generator as chunk_generator
from corruptions.sequences import make_sequences, num_frames
from generation.output import MANIFEST_NAME, WORK_DIR, load_manifest
from generation.perturbation_sets import PerturbationConfig, generate_cifar_p, generate_imagenet_p
from generation.sources import resize_shorter_side
from runtime.files import sha256_file
from runtime.video import decode_video
from tests.perturbation_oracles import psnr

CIFAR_NAMES = ("gaussian_noise", "translate", "spatter")  # random (frame-0 rule), geometric, random with a recurrence
FAST = dict(x264_preset="ultrafast")  # the release used veryslow; the bitstream settings are what the test checks


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Single intra-op thread while this module runs (small tensors on a shared 2-core machine); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Interrupt(Exception):
    """Raised from the chunk hook to stop a generation the way a crash would."""


def interrupt_after(count: int):
    seen = []

    def hook(name: str, chunk: int) -> None:
        seen.append((name, chunk))
        if len(seen) == count:
            raise Interrupt(f"stopped after {seen}")
    return hook


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every data file under ``folder`` (the manifest, with its times, excluded)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_NAME}


@pytest.fixture(scope="module")
def cifar_images(cifar_like) -> tuple[np.ndarray, np.ndarray]:
    return cifar_like(10, seed=3)


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory, cifar_images) -> Path:
    """One uninterrupted CIFAR-P run: 10 videos in chunks of 4 (4 + 4 + 2)."""
    out = tmp_path_factory.mktemp("cifar_p") / "full"
    generate_cifar_p(*cifar_images, out, PerturbationConfig(perturbations=CIFAR_NAMES, batch_size=4, seed=7))
    return out


def test_cifar_p_files_have_the_released_layout(cifar_run, cifar_images):
    from loaders.released import open_cifar_p

    images, labels = cifar_images
    manifest = load_manifest(cifar_run)
    assert manifest["generated"] is True and manifest["released"] is False and manifest["complete"] is True
    assert manifest["layout"] == "cifar-p-npy" and manifest["perturbations"] == list(CIFAR_NAMES)
    assert manifest["settings"]["batch_size"] == 4 and manifest["settings"]["seed"] == 7
    for name in CIFAR_NAMES:
        array = np.load(cifar_run / f"{name}.npy")
        assert array.shape == (10, num_frames(name, "cifar"), 32, 32, 3) and array.dtype == np.uint8
        assert manifest["files"][f"{name}.npy"]["sha256"] == sha256_file(cifar_run / f"{name}.npy")
        assert open_cifar_p(cifar_run, name, num_videos=10).shape == array.shape  # the evaluator's reader accepts it
    np.testing.assert_array_equal(np.load(cifar_run / "gaussian_noise.npy")[:, 0], images)  # frame-0 rule
    np.testing.assert_array_equal(np.load(cifar_run / "labels.npy"), labels.astype(np.uint8))
    assert not (cifar_run / WORK_DIR).exists()


def test_cifar_p_chunks_are_seeded_independently(cifar_run, cifar_images):
    # Chunk k of a file is make_sequences on videos 4k..4k+3 with derive_seed(seed, name index, k): recomputing
    # any chunk alone gives the stored bytes.
    images = torch.from_numpy(cifar_images[0]).permute(0, 3, 1, 2).contiguous()
    stored = np.load(cifar_run / "gaussian_noise.npy")
    for k in range(3):
        videos = make_sequences(images[4 * k:4 * k + 4], "gaussian_noise", "cifar",
                                generator=chunk_generator(7, "gaussian_noise", k, "cpu"))
        np.testing.assert_array_equal(stored[4 * k:4 * k + 4], videos.permute(0, 1, 3, 4, 2).numpy())


def test_subset_run_writes_the_same_bytes(cifar_run, cifar_images, tmp_path):
    generate_cifar_p(*cifar_images, tmp_path, PerturbationConfig(perturbations=("spatter",), batch_size=4, seed=7))
    assert sha256_file(tmp_path / "spatter.npy") == sha256_file(cifar_run / "spatter.npy")


def test_resume_after_interruption_is_bit_identical(cifar_run, cifar_images, tmp_path):
    config = PerturbationConfig(perturbations=CIFAR_NAMES, batch_size=4, seed=7)
    with pytest.raises(Interrupt):
        generate_cifar_p(*cifar_images, tmp_path, config, on_chunk=interrupt_after(4))  # mid-way through translate
    assert (tmp_path / "gaussian_noise.npy").is_file() and not (tmp_path / "translate.npy").exists()
    part = tmp_path / WORK_DIR / "translate" / "chunk_00000.npy"
    part.write_bytes(part.read_bytes()[:1000])  # a chunk cut short by the crash: must be regenerated, not trusted
    manifest = generate_cifar_p(*cifar_images, tmp_path, config)
    assert manifest["complete"] and digests(tmp_path) == digests(cifar_run)


def test_truncated_output_file_is_regenerated(cifar_run, cifar_images, tmp_path):
    config = PerturbationConfig(perturbations=("translate",), batch_size=4, seed=7)
    generate_cifar_p(*cifar_images, tmp_path, config)
    path = tmp_path / "translate.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="damaged or incomplete"):
        generate_cifar_p(*cifar_images, tmp_path, config)
    assert sha256_file(path) == sha256_file(cifar_run / "translate.npy")


def test_difficulty_writes_the_stronger_noise_file(cifar_images, tmp_path):
    generate_cifar_p(*cifar_images, tmp_path, PerturbationConfig(perturbations=("shot_noise",), difficulty=3))
    hard = np.load(tmp_path / "shot_noise_3.npy").astype(np.float64)
    assert load_manifest(tmp_path)["perturbations"] == ["shot_noise_3"]
    mild = make_sequences(torch.from_numpy(cifar_images[0]).permute(0, 3, 1, 2), "shot_noise", "cifar",
                          generator=torch.Generator().manual_seed(0)).permute(0, 1, 3, 4, 2).double().numpy()
    clean = cifar_images[0][:, None].astype(np.float64)
    # photon scale 200 (difficulty 3) against 700 (difficulty 1): relative noise sqrt(700 / 200) = 1.9x larger
    assert np.abs(hard[:, 1:] - clean).mean() > 1.5 * np.abs(mild[:, 1:] - clean).mean()


def test_resuming_with_other_settings_is_refused(cifar_images, tmp_path):
    generate_cifar_p(*cifar_images, tmp_path, PerturbationConfig(perturbations=("translate",), batch_size=4))
    with pytest.raises(ValueError, match="batch_size"):
        generate_cifar_p(*cifar_images, tmp_path, PerturbationConfig(perturbations=("translate",), batch_size=5))
    with pytest.raises(ValueError, match="source"):
        generate_cifar_p(cifar_images[0][:9], cifar_images[1][:9], tmp_path,
                         PerturbationConfig(perturbations=("translate",), batch_size=4))


def test_imagenet_p_tree_resume_and_reader(tmp_path, image_folder):
    from corruptions.sequences import num_frames
    from loaders.released import VideoFiles, list_imagenet_p

    samples, classes = image_folder(tmp_path / "val", per_class=2, size=(300, 260))  # Resize(256): 295x256
    out = tmp_path / "ImageNet-P"
    config = PerturbationConfig(preset="imagenet", perturbations=("translate", "gaussian_noise"), batch_size=3, **FAST)
    with pytest.raises(Interrupt):
        generate_imagenet_p(samples, classes, out, config, on_chunk=interrupt_after(1))
    written = list(out.rglob("*.mp4"))
    assert 0 < len(written) < 8 and not list(out.rglob("*.tmp"))  # whole videos only; the rest cancelled
    manifest = generate_imagenet_p(samples, classes, out, config)
    assert manifest["complete"] and manifest["layout"] == "imagenet-p-mp4"
    assert manifest["files"]["translate"]["videos"] == 4 and manifest["files"]["translate"]["frames"] == 41
    assert manifest["files"]["gaussian_noise"]["encoding"]["tune"] == "grain"
    found, found_classes = list_imagenet_p(out, "translate")
    assert found_classes == classes and [p.name for p, _ in found] == [Path(p).stem + ".mp4" for p, _ in samples]
    clip, label = VideoFiles(found, frames=num_frames("translate", "imagenet"), size=(224, 224))[0]
    assert clip.shape == (41, 3, 224, 224) and label == 0
    # The decoded video is the lossy copy of make_sequences on the Resize(256) image.
    with Image.open(samples[0][0]) as image:
        base = np.asarray(resize_shorter_side(image))
    expected = make_sequences(torch.from_numpy(base.copy()).permute(2, 0, 1)[None], "translate", "imagenet")[0]
    assert psnr(clip.numpy(), expected.numpy()) > 30
    victim = out / "gaussian_noise" / classes[1] / (Path(samples[3][0]).stem + ".mp4")
    kept = out / "gaussian_noise" / classes[0] / (Path(samples[0][0]).stem + ".mp4")
    before, kept_stat = decode_video(victim), kept.stat().st_mtime_ns
    victim.unlink()
    generate_imagenet_p(samples, classes, out, config)
    assert kept.stat().st_mtime_ns == kept_stat  # only the missing video is written again ...
    assert psnr(decode_video(victim), before) > 40  # ... with the same frames (chunk seed)


# sha256 of the CIFAR-P files written by the code before generation/ left corruptions/ (commit 7c1df17), for the
# settings below; sequence arithmetic is torch's business, so the pin holds under the torch release it was recorded
# with.
PINNED_TORCH = "2.14.1"
PINNED_CIFAR_P = {
    "gaussian_noise.npy": "a8758db6cca2ccc7de7097864712bbaae4398fb73891de0977527ee9688a13fe",
    "labels.npy": "33ca7f8dd8334475171081c161e3deda3d55b05e8d3c0981c7af4b4de8806963",
    "translate.npy": "750c8c27a3a407e772ec6c16298ee3865d379020c0de6316017163a3914beca4",
}


@pytest.mark.skipif(torch.__version__.split("+")[0] != PINNED_TORCH,
                    reason=f"bytes pinned under torch {PINNED_TORCH}, this environment has torch {torch.__version__}")
def test_output_bytes_are_pinned(cifar_images, tmp_path):
    config = PerturbationConfig(perturbations=("gaussian_noise", "translate"), batch_size=4, seed=7)
    generate_cifar_p(*cifar_images, tmp_path, config)
    assert digests(tmp_path) == PINNED_CIFAR_P

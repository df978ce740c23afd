"""-C sets (generation/corruption_sets.py): released layouts, seeding per chunk, atomic resume, manifest, and the
bytes pinned to those written before generation/ was split out of corruptions/."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from corruptions import ALL_CORRUPTIONS
from corruptions.chunks import corrupt_batch
from corruptions.chunks import corruption_chunk_generator as chunk_generator
from generation.corruption_sets import GenerationConfig, generate_cifar_c, generate_imagenet_c
from generation.jpeg_files import encode_jpeg
from generation.output import MANIFEST_NAME, WORK_DIR, load_manifest, parse_checksums, verify_checksums
from generation.sources import preprocess_image
from runtime.files import sha256_file

ROOT = Path(__file__).resolve().parents[1]
RANDOM = "gaussian_noise"  # draws random fields: a wrong seed or a replayed chunk would change its bytes


class Interrupt(Exception):
    """Raised from the chunk hook to stop a generation the way a crash would."""


def interrupt_after(count: int):
    seen = []

    def hook(corruption: str, severity: int, chunk: int) -> None:
        seen.append((corruption, severity, chunk))
        if len(seen) == count:
            raise Interrupt(f"stopped after {seen}")
    return hook


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every data file under ``folder`` (the manifest, with its times, excluded)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_NAME}


def expected_block(images: np.ndarray, corruption: str, severity: int, preset: str, seed: int, b: int) -> np.ndarray:
    """Severity block of a CIFAR-C file recomputed chunk by chunk: (N, H, W, 3) uint8 in test-set order."""
    clean = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    out = [corrupt_batch(clean[k:k + b], corruption, severity, preset, chunk_generator(seed, corruption, severity,
                                                                                        k // b, "cpu"))
           for k in range(0, len(images), b)]
    return torch.cat(out).permute(0, 2, 3, 1).numpy()


def test_chunk_generators_are_distinct_per_corruption_severity_chunk_and_seed():
    def draw(*key):
        return torch.rand(4, generator=chunk_generator(*key, "cpu")).tolist()

    base = draw(0, "fog", 3, 2)
    assert draw(0, "fog", 3, 2) == base  # a pure function of the key: resume and subsets replay it
    for other in [(1, "fog", 3, 2), (0, "snow", 3, 2), (0, "fog", 4, 2), (0, "fog", 3, 1)]:
        assert draw(*other) != base, other


@pytest.fixture(scope="module")
def tiny_cifar(cifar_like):
    return cifar_like(6)


def test_cifar_c_files_have_the_released_shape_dtype_order_and_labels(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    config = GenerationConfig(corruptions=ALL_CORRUPTIONS, batch_size=4, seed=3)  # chunks of 4 + 2 images
    manifest = generate_cifar_c(images, labels, tmp_path, config)
    assert manifest["complete"] and manifest["corruptions"] == list(ALL_CORRUPTIONS)
    stored_labels = np.load(tmp_path / "labels.npy")
    assert stored_labels.dtype == np.uint8 and stored_labels.tolist() == labels.tolist() * 5
    for corruption in ALL_CORRUPTIONS:
        data = np.load(tmp_path / f"{corruption}.npy", mmap_mode="r")  # the evaluator memory-maps it
        assert data.shape == (30, 32, 32, 3) and data.dtype == np.uint8  # 5 severities x 6 images, HWC
        for severity in range(1, 6):  # rows 6(s-1) .. 6s-1 hold severity s, test-set order within the block
            block = expected_block(images, corruption, severity, "cifar", 3, 4)
            np.testing.assert_array_equal(data[6 * (severity - 1):6 * severity], block, err_msg=corruption)
    assert not (tmp_path / WORK_DIR).exists()


def test_generation_is_byte_reproducible_for_a_seed(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    config = GenerationConfig(corruptions=(RANDOM,), batch_size=4, seed=7)
    generate_cifar_c(images, labels, tmp_path / "a", config)
    generate_cifar_c(images, labels, tmp_path / "b", config)
    generate_cifar_c(images, labels, tmp_path / "c", GenerationConfig(corruptions=(RANDOM,), batch_size=4, seed=8))
    assert file_digests(tmp_path / "a") == file_digests(tmp_path / "b")
    assert file_digests(tmp_path / "a")[f"{RANDOM}.npy"] != file_digests(tmp_path / "c")[f"{RANDOM}.npy"]


def test_subset_of_severities_holds_the_same_blocks_as_a_full_run(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    full = generate_cifar_c(images, labels, tmp_path / "full", GenerationConfig(corruptions=(RANDOM,), batch_size=4))
    subset = generate_cifar_c(images, labels, tmp_path / "sub",
                              GenerationConfig(corruptions=(RANDOM,), severities=(2, 5), batch_size=4))
    whole = np.load(tmp_path / "full" / f"{RANDOM}.npy")
    part = np.load(tmp_path / "sub" / f"{RANDOM}.npy")
    assert part.shape == (12, 32, 32, 3)  # severities 2 and 5, in that order
    np.testing.assert_array_equal(part[:6], whole[6:12])
    np.testing.assert_array_equal(part[6:], whole[24:30])
    assert subset["settings"]["severities"] == [2, 5] and full["settings"]["severities"] == [1, 2, 3, 4, 5]
    assert subset["files"][f"{RANDOM}.npy"]["severities"] == [2, 5]
    assert np.load(tmp_path / "sub" / "labels.npy").tolist() == labels.tolist() * 2


def test_resume_after_interruption_is_bit_identical(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    others = tuple(c for c in ALL_CORRUPTIONS if c != RANDOM)[:1]
    config = GenerationConfig(corruptions=(RANDOM, *others), batch_size=4, seed=1)
    generate_cifar_c(images, labels, tmp_path / "ref", config)
    with pytest.raises(Interrupt):  # 10 chunks per corruption; stop inside the 1st corruption's 4th severity
        generate_cifar_c(images, labels, tmp_path / "run", config, on_chunk=interrupt_after(7))
    assert not (tmp_path / "run" / f"{RANDOM}.npy").exists()  # nothing that looks complete
    assert load_manifest(tmp_path / "run")["complete"] is False
    written = []
    generate_cifar_c(images, labels, tmp_path / "run", config, on_chunk=lambda *unit: written.append(unit))
    assert len(written) == 10 * len(config.corruptions) - 7  # finished chunks were kept, not redone
    assert file_digests(tmp_path / "run") == file_digests(tmp_path / "ref")
    assert load_manifest(tmp_path / "run")["complete"] is True


def test_truncated_chunk_is_detected_and_regenerated(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    config = GenerationConfig(corruptions=(RANDOM,), batch_size=4, seed=2)
    generate_cifar_c(images, labels, tmp_path / "ref", config)
    with pytest.raises(Interrupt):
        generate_cifar_c(images, labels, tmp_path / "run", config, on_chunk=interrupt_after(5))
    chunk = tmp_path / "run" / WORK_DIR / RANDOM / "2" / "chunk_00000.npy"
    chunk.write_bytes(chunk.read_bytes()[:-100])  # damaged after the fact (disk full, bad copy)
    written = []
    generate_cifar_c(images, labels, tmp_path / "run", config, on_chunk=lambda *unit: written.append(unit))
    assert (RANDOM, 2, 0) in written and (RANDOM, 1, 0) not in written
    assert file_digests(tmp_path / "run") == file_digests(tmp_path / "ref")


def test_damaged_final_file_is_regenerated_and_checksums_match(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    config = GenerationConfig(corruptions=(RANDOM,), batch_size=4)
    manifest = generate_cifar_c(images, labels, tmp_path, config)
    for name, entry in manifest["files"].items():
        assert sha256_file(tmp_path / name) == entry["sha256"], name
        assert np.load(tmp_path / name, mmap_mode="r").shape == tuple(entry["shape"])
    reference = file_digests(tmp_path)
    path = tmp_path / f"{RANDOM}.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, one flipped byte: only a checksum finds it
    path.write_bytes(bytes(data))
    generate_cifar_c(images, labels, tmp_path, config)  # cheap check: size matches, kept
    assert file_digests(tmp_path) != reference
    with pytest.warns(UserWarning, match="damaged"):
        generate_cifar_c(images, labels, tmp_path, GenerationConfig(corruptions=(RANDOM,), batch_size=4, verify=True))
    assert file_digests(tmp_path) == reference


def test_resume_with_other_settings_is_refused(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    generate_cifar_c(images, labels, tmp_path, GenerationConfig(corruptions=(RANDOM,), batch_size=4, seed=0))
    with pytest.raises(ValueError, match="seed"):
        generate_cifar_c(images, labels, tmp_path, GenerationConfig(corruptions=(RANDOM,), batch_size=4, seed=1))
    with pytest.raises(ValueError, match="batch_size"):
        generate_cifar_c(images, labels, tmp_path, GenerationConfig(corruptions=(RANDOM,), batch_size=3))
    with pytest.raises(ValueError, match="source"):
        generate_cifar_c(images[:5], labels[:5], tmp_path, GenerationConfig(corruptions=(RANDOM,), batch_size=4))


def test_bad_inputs_give_clear_errors(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    with pytest.raises(ValueError, match="unknown corruption.*'fogg'"):
        generate_cifar_c(images, labels, tmp_path / "a", GenerationConfig(corruptions=("fogg",)))
    with pytest.raises(ValueError, match="preset 'imagenet' expects 224x224 images, got 32x32"):
        generate_cifar_c(images, labels, tmp_path / "b", GenerationConfig(preset="imagenet"))
    with pytest.raises(ValueError, match="severities"):
        generate_cifar_c(images, labels, tmp_path / "c", GenerationConfig(severities=(0, 1)))
    with pytest.raises(ValueError, match="labels must have shape"):
        generate_cifar_c(images, labels[:3], tmp_path / "d", GenerationConfig())
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "mine.txt").write_text("not yours")
    with pytest.raises(ValueError, match="no manifest.json"):
        generate_cifar_c(images, labels, tmp_path / "e", GenerationConfig(corruptions=ALL_CORRUPTIONS[:1]))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="cannot write to output folder"):
        generate_cifar_c(images, labels, tmp_path / "file" / "out", GenerationConfig(corruptions=ALL_CORRUPTIONS[:1]))


def test_preprocess_is_torchvision_resize256_centercrop224():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    rng = np.random.default_rng(0)
    # 300x260 -> Resize(256): 295x256 (int(256 * 300 / 260) = 295) -> crop offsets round(35.5) = 36, round(16) = 16
    for size in [(300, 260), (260, 300), (256, 256), (224, 333), (500, 375)]:
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        ours = np.asarray(preprocess_image(image, "imagenet"))
        ref = np.asarray(TF.center_crop(TF.resize(image, 256, interpolation=InterpolationMode.BILINEAR), 224))
        np.testing.assert_array_equal(ours, ref, err_msg=str(size))
    image = Image.fromarray(rng.integers(0, 256, (260, 300, 3), dtype=np.uint8))
    expected = image.resize((295, 256), Image.BILINEAR).crop((36, 16, 260, 240))
    np.testing.assert_array_equal(np.asarray(preprocess_image(image, "imagenet")), np.asarray(expected))
    assert preprocess_image(image.convert("L"), "tiny").size == (64, 64)


def test_imagefolder_tree_is_the_released_jpeg_layout_and_resumes_bit_identically(tmp_path, image_folder):
    samples, classes = image_folder(tmp_path / "val", per_class=3)
    config = GenerationConfig(preset="imagenet", corruptions=(RANDOM,), severities=(1, 4), batch_size=4, seed=5)
    manifest = generate_imagenet_c(samples, classes, tmp_path / "ref", config)
    names = sorted(str(p.relative_to(tmp_path / "ref")) for p in (tmp_path / "ref").rglob("*.JPEG"))
    assert names == sorted(f"{RANDOM}/{s}/{classes[label]}/{Path(path).name}"
                           for s in (1, 4) for path, label in samples)
    clean = torch.stack([torch.from_numpy(np.asarray(preprocess_image(Image.open(p), "imagenet")).copy())
                         for p, _ in samples]).permute(0, 3, 1, 2)  # (6, 3, 224, 224)
    for severity in (1, 4):  # the file bytes are the q85 encoding of the chunk-seeded corruption
        out = torch.cat([corrupt_batch(clean[k:k + 4], RANDOM, severity, "imagenet",
                                       chunk_generator(5, RANDOM, severity, k // 4, "cpu")) for k in (0, 4)])
        for i, (path, label) in enumerate(samples):
            stored = tmp_path / "ref" / RANDOM / str(severity) / classes[label] / Path(path).name
            assert stored.read_bytes() == encode_jpeg(out[i].permute(1, 2, 0).numpy())
            with Image.open(stored) as decoded:
                assert decoded.size == (224, 224) and decoded.mode == "RGB"
        entry = manifest["files"][f"{RANDOM}/{severity}"]
        listed = parse_checksums((tmp_path / "ref" / entry["checksums"]).read_text())
        assert len(listed) == 6 and verify_checksums(tmp_path / "ref", listed, rehash=True) is None
    with pytest.raises(Interrupt):  # 2 chunks per unit, 4 chunk writes in all: stop after the 3rd
        generate_imagenet_c(samples, classes, tmp_path / "run", config, on_chunk=interrupt_after(3))
    resumed = GenerationConfig(preset="imagenet", corruptions=(RANDOM,), severities=(1, 4), batch_size=4, seed=5,
                               workers=1)  # a decode worker process and an encoder thread: same bytes
    generate_imagenet_c(samples, classes, tmp_path / "run", resumed)
    assert file_digests(tmp_path / "run") == file_digests(tmp_path / "ref")
    assert load_manifest(tmp_path / "run")["complete"] is True


def test_killed_generation_subprocess_resumes_to_the_same_bytes(tmp_path, cifar_like):
    images, labels = cifar_like(40, seed=4)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    script = (  # slowed down per chunk so that the kill lands mid-run, wherever the process is
        "import sys, time, numpy as np\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from generation.corruption_sets import GenerationConfig, generate_cifar_c\n"
        f"images, labels = np.load({str(tmp_path / 'images.npy')!r}), np.load({str(tmp_path / 'labels.npy')!r})\n"
        f"config = GenerationConfig(corruptions=({RANDOM!r},), batch_size=4, seed=11)\n"
        f"generate_cifar_c(images, labels, {str(tmp_path / 'run')!r}, config, on_chunk=lambda *u: time.sleep(0.1))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    work = tmp_path / "run" / WORK_DIR
    while len(list(work.rglob("chunk_*.npy"))) < 12 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]  # still running: 50 chunks take > 5 s
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "run" / f"{RANDOM}.npy").exists()
    config = GenerationConfig(corruptions=(RANDOM,), batch_size=4, seed=11)
    generate_cifar_c(images, labels, tmp_path / "run", config)
    generate_cifar_c(images, labels, tmp_path / "ref", config)
    assert file_digests(tmp_path / "run") == file_digests(tmp_path / "ref")
    assert not list((tmp_path / "run").rglob("*.tmp"))


@pytest.mark.gpu
def test_cuda_generation_has_the_released_layout_and_is_reproducible(tmp_path, tiny_cifar):
    images, labels = tiny_cifar
    config = GenerationConfig(corruptions=ALL_CORRUPTIONS, batch_size=4, device="cuda")
    manifest = generate_cifar_c(images, labels, tmp_path / "a", config)
    generate_cifar_c(images, labels, tmp_path / "b", config)
    assert manifest["settings"]["device_type"] == "cuda" and manifest["complete"]
    assert file_digests(tmp_path / "a") == file_digests(tmp_path / "b")
    for corruption in ALL_CORRUPTIONS:
        assert np.load(tmp_path / "a" / f"{corruption}.npy", mmap_mode="r").shape == (30, 32, 32, 3)


# sha256 of the files written by the code before generation/ left corruptions/ (commit 7c1df17), for the settings of
# test_output_bytes_are_pinned; corruption arithmetic and the JPEG encoder are the versions' business, so the pin
# holds under the torch release and libjpeg it was recorded with.
PINNED_WITH = {"torch": "2.14.1", "libjpeg": "6.2"}
PINNED_CIFAR_C = {
    "contrast.npy": "d5700953d52d3013da20df9035292fed5b91dee695fef8380f48b53daf0aa3ec",
    "gaussian_noise.npy": "4b7647a0180098ced460d2a0ebe0a24f928b5c13bfdd560a2d1c15b8ebda6d7d",
    "labels.npy": "9584f7c0e4c2cb31265cfe90a203727affaa40b0436cb0ad5e003595cc575268",
}
PINNED_IMAGENET_C = {
    "checksums/gaussian_noise_2.sha256": "ee6053ab116b37d77addbdd3cee57967d6d442011d36a703f60cbc1355a426e4",
    "gaussian_noise/2/n01440764/ILSVRC2012_val_00000001.JPEG":
        "dc73574a5cd72128d6cf770bf17e8e2088cff6b75a6324b8a810df3abc291457",
    "gaussian_noise/2/n01440764/ILSVRC2012_val_00000002.JPEG":
        "48757da58e92185925f82764f9b403dee1fa4eb3f182a1d0583efc26c610b057",
    "gaussian_noise/2/n01443537/ILSVRC2012_val_00000003.JPEG":
        "a33583a647a1c977c36ffb9af07ef0bbbc59d29c5a366085c1a918cf6cc0d366",
    "gaussian_noise/2/n01443537/ILSVRC2012_val_00000004.JPEG":
        "45b7e29fb80c3958f36e99982c390d3f64ef5817c1d3cc2f5de955552f28f2f0",
}


def pinned_versions_differ() -> str | None:
    from generation.output import libjpeg_version

    here = {"torch": torch.__version__.split("+")[0], "libjpeg": libjpeg_version()}
    return None if here == PINNED_WITH else f"bytes pinned under {PINNED_WITH}, this environment has {here}"


@pytest.mark.skipif(pinned_versions_differ() is not None, reason=str(pinned_versions_differ()))
def test_output_bytes_are_pinned(tmp_path, cifar_like, image_folder):
    images, labels = cifar_like(6, seed=0)
    config = GenerationConfig(corruptions=("gaussian_noise", "contrast"), batch_size=4, seed=3)
    generate_cifar_c(images, labels, tmp_path / "c", config)
    assert file_digests(tmp_path / "c") == PINNED_CIFAR_C
    samples, classes = image_folder(tmp_path / "val", per_class=2)
    config = GenerationConfig(preset="imagenet", corruptions=("gaussian_noise",), severities=(2,), batch_size=3, seed=5)
    generate_imagenet_c(samples, classes, tmp_path / "in", config)
    assert file_digests(tmp_path / "in") == PINNED_IMAGENET_C

"""evaluation/sources.py: generated -C / -P data replays the chunk-seeding contract of corruptions/chunks.py across
chunk boundaries (logits equal those of the same data read from files); released readers and clean sets say what is
missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.inference import InferenceSettings, Predictor
from evaluation.sources import (
    CleanSet,
    GeneratedCorruptions,
    GeneratedPerturbations,
    ReleasedCorruptions,
    ReleasedPerturbations,
    load_clean_set,
    perturbation_data_file,
)
from tests._evaluation_data import (
    marked_images,
    tiny_classifier,
    write_cifar_c,
    write_contract_cifar_c,
    write_contract_cifar_p,
)

CPU = InferenceSettings(device="cpu", batch_size=128, chunk_images=256, workers=0)


def _predictor(num_classes: int = 10) -> Predictor:
    return Predictor(tiny_classifier(num_classes), (0.5,) * 3, (0.25,) * 3, CPU)


def _cat(pairs):
    logits, labels = zip(*pairs, strict=True)
    return torch.cat(logits), torch.cat(labels)


def test_generated_corruptions_equal_contract_files_across_chunks(tmp_path):
    images, labels = marked_images(520, seed=7), np.arange(520) % 10  # chunks of 500: 500 + 20
    folder = write_contract_cifar_c(tmp_path / "C", images, labels, ("gaussian_noise", "glass_blur"), seed=11)
    clean = CleanSet(labels=labels, where="test images", images=images)
    generated = GeneratedCorruptions(clean, "cifar", seed=11)
    released = ReleasedCorruptions(folder, "cifar", num_classes=10)
    predictor = _predictor()
    for name, severity in (("gaussian_noise", 1), ("glass_blur", 4)):
        gen_logits, gen_labels = _cat(generated.pairs(predictor, name, severity))
        file_logits, file_labels = _cat(released.pairs(predictor, name, severity))
        assert torch.equal(gen_logits, file_logits) and torch.equal(gen_labels, file_labels)
    assert generated.source["chunk_size"] == 500 and generated.source["seed"] == 11
    other_seed = _cat(GeneratedCorruptions(clean, "cifar", seed=12).pairs(predictor, "gaussian_noise", 1))[0]
    assert not torch.equal(other_seed, _cat(generated.pairs(predictor, "gaussian_noise", 1))[0])


def test_generated_perturbations_equal_contract_files_across_chunks(tmp_path):
    images = marked_images(104, seed=8)  # chunks of 100 videos: 100 + 4
    files = ("gaussian_noise_3", "translate")
    folder = write_contract_cifar_p(tmp_path / "P", images, files, seed=2)
    clean = CleanSet(labels=np.zeros(104, np.int64), where="test images", images=images)
    generated = GeneratedPerturbations(clean, "cifar", seed=2)
    released = ReleasedPerturbations(folder, "cifar")
    predictor = _predictor()
    for name, difficulty in (("gaussian_noise", 3), ("translate", 2)):  # translate at 2: the same videos
        gen = torch.cat(list(generated.logits(predictor, name, difficulty)))
        read = torch.cat(list(released.logits(predictor, name, difficulty)))
        assert gen.shape == read.shape == (104, 31 if name == "gaussian_noise" else 16, 10)
        assert torch.equal(gen, read)
    assert released.names(None, 1) == ["translate"]  # gaussian_noise (difficulty 1) is absent
    assert released.names(None, 3) == ["gaussian_noise", "translate"]


def test_perturbation_data_file_names_the_noise_sets_only():
    assert perturbation_data_file("gaussian_noise", 2) == "gaussian_noise_2"
    assert perturbation_data_file("speckle_noise", 1) == "speckle_noise"
    assert perturbation_data_file("translate", 3) == "translate"  # difficulty is the frame step, same videos
    with pytest.raises(ValueError, match="unknown perturbation 'wobble'"):
        perturbation_data_file("wobble", 1)


def test_released_corruptions_skip_missing_extras_and_refuse_missing_benchmark_ones(tmp_path):
    from corruptions import CORRUPTIONS

    images, labels = marked_images(2), np.array([0, 1])
    full = write_cifar_c(tmp_path / "full", images, labels, corruptions=(*CORRUPTIONS, "spatter"))
    names, notes = ReleasedCorruptions(full, "cifar", 10).names(None)
    assert names == [*CORRUPTIONS, "spatter"]
    assert notes == [f"extra corruption(s) speckle_noise, gaussian_blur, saturate not found in {full}; skipped"]
    partial = write_cifar_c(tmp_path / "partial", images, labels, corruptions=("fog",))
    with pytest.raises(FileNotFoundError, match="no released data for benchmark corruption"):
        ReleasedCorruptions(partial, "cifar", 10).names(None)
    assert ReleasedCorruptions(partial, "cifar", 10).names(("fog",)) == (["fog"], [])


def test_released_cifar_c_labels_are_checked_against_the_model(tmp_path):
    folder = write_cifar_c(tmp_path / "C", marked_images(2), np.array([0, 7]), corruptions=("fog",))
    with pytest.raises(ValueError, match=r"labels span 0\.\.7, expected 0\.\.4"):
        list(ReleasedCorruptions(folder, "cifar", num_classes=5).pairs(_predictor(5), "fog", 1))


def test_clean_sets(tmp_path):
    digits = load_clean_set("digits", tmp_path, limit=30)
    assert digits.images.shape == (30, 32, 32, 3) and digits.labels.shape == (30,) and "digits" in digits.where
    assert digits.on_device(torch.device("cpu")).shape == (30, 3, 32, 32)
    with pytest.raises(ValueError, match="no clean test set for dataset 'svhn'; known: digits, cifar10"):
        load_clean_set("svhn", tmp_path)
    files = CleanSet(labels=np.zeros(1, np.int64), where="ImageNet", samples=[(tmp_path / "x.JPEG", 0)])
    with pytest.raises(ValueError, match="needs an in-memory clean test set"):
        files.on_device(torch.device("cpu"))


def test_a_decode_worker_error_names_the_file_without_the_worker_traceback(tmp_path):
    from torch.utils.data import DataLoader

    from evaluation.sources import worker_errors
    from loaders.released import ImageFiles

    good, bad = tmp_path / "good.png", tmp_path / "bad.JPEG"
    from PIL import Image

    Image.fromarray(marked_images(1)[0]).save(good)
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    loader = DataLoader(ImageFiles([(good, 0), (bad, 1)]), batch_size=1, num_workers=1)
    with pytest.raises(ValueError) as caught:
        list(worker_errors(loader))
    message = str(caught.value)
    assert f"{bad} is not a readable image" in message and "Traceback" not in message
    with pytest.raises(KeyError, match="plain"):  # other errors pass through unchanged
        list(worker_errors(iter_raising(KeyError("plain"))))


def iter_raising(exc):
    yield 1
    raise exc


def test_cell_fingerprints_follow_the_files_and_the_manifest(tmp_path):
    import json

    from evaluation.sources import file_fingerprint, files_source

    folder = write_cifar_c(tmp_path / "C", marked_images(2), np.array([0, 1]), corruptions=("fog",))
    fog = folder / "fog.npy"
    before = file_fingerprint(fog)
    assert before["bytes"] == fog.stat().st_size and len(before["sha256"]) == 64
    np.save(fog, 255 - np.load(fog))
    assert file_fingerprint(fog)["sha256"] != before["sha256"]
    assert files_source(folder, "cifar-c-npy") == ({"kind": "released", "path": str(folder),
                                                    "format": "cifar-c-npy"}, None)
    manifest = {"generated": True, "settings": {"seed": 4, "preset": "cifar"}, "files": {"fog.npy": {"sha256": "ab"}},
                "environment": {"augmix-robustness": "1.2.3"}, "layout": "cifar-c-npy"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    source, loaded = files_source(folder, "cifar-c-npy")
    assert source["kind"] == "generated-files" and (source["seed"], source["version"]) == (4, "1.2.3")
    assert file_fingerprint(fog, loaded)["manifest_sha256"] == "ab"
    (folder / "manifest.json").write_text("{broken")
    with pytest.raises(ValueError, match="manifest.json is not a readable JSON manifest"):
        files_source(folder, "cifar-c-npy")

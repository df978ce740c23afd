"""loaders/cifar.py, digits.py, synthetic.py: the real on-disk formats, clear errors, the fixed digits split."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from loaders.cifar import ensure_cifar, load_cifar
from loaders.digits import load_digits
from loaders.synthetic import write_cifar_pickles, write_image_folder


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_pickles_round_trip_in_torchvision_layout(tmp_path, name, classes):
    write_cifar_pickles(tmp_path, name, num_train=50, num_test=20, seed=3)
    x, y = load_cifar(tmp_path, name, train=True)
    t, u = load_cifar(tmp_path, name, train=False)
    assert x.shape == (50, 32, 32, 3) and x.dtype == np.uint8 and t.shape == (20, 32, 32, 3)
    assert y.dtype == np.int64 and y.max() < classes and len(u) == 20
    # torchvision reads the same files (its md5 check would fail on synthetic data, so read the pickle directly)
    folder = tmp_path / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    with open(folder / ("test_batch" if name == "cifar10" else "test"), "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    np.testing.assert_array_equal(raw["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), t)


def test_missing_cifar_names_the_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar(tmp_path, "cifar10", train=False)
    message = str(err.value)
    assert "cifar-10-batches-py" in message and "test_batch" in message and "(which does not exist)" in message
    assert "data_batch_1" not in message  # only the requested split is required
    assert "cifar-10-python.tar.gz" in message
    with pytest.raises(FileNotFoundError, match="expected data_batch_1, data_batch_2, data_batch_3, data_batch_4, "
                                                "data_batch_5 in .*cifar-10-batches-py"):
        ensure_cifar(tmp_path, "cifar10", splits=("train",))
    with pytest.raises(ValueError, match="expected one or more of 'train', 'test'"):
        ensure_cifar(tmp_path, "cifar10", splits=("val",))


@pytest.mark.parametrize("name,keep", [("cifar10", ("test_batch",)), ("cifar100", ("test",))])
def test_test_split_loads_without_the_training_files(tmp_path, name, keep):
    folder = write_cifar_pickles(tmp_path, name, num_train=10, num_test=6)
    for path in folder.iterdir():
        if path.name not in keep:
            path.unlink()
    ensure_cifar(tmp_path, name, splits=("test",))
    images, labels = load_cifar(tmp_path, name, train=False)
    assert images.shape == (6, 32, 32, 3) and labels.shape == (6,)
    with pytest.raises(FileNotFoundError, match="train"):
        load_cifar(tmp_path, name, train=True)


def test_download_failure_is_reported_with_the_expected_layout(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(FileNotFoundError, match="download failed: network unreachable"):
        load_cifar(tmp_path, "cifar100", train=True, download=True)


def test_tampered_batch_cannot_run_code(tmp_path):
    folder = write_cifar_pickles(tmp_path, "cifar10", num_train=10, num_test=5)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [0]}, f)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_cifar(tmp_path, "cifar10", train=False)


def test_wrongly_shaped_batch_is_named(tmp_path):
    folder = write_cifar_pickles(tmp_path, "cifar10", num_train=10, num_test=5)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((5, 100), np.uint8), "labels": [0] * 5}, f)
    with pytest.raises(ValueError, match="test_batch.*expected data \\(N, 3072\\)"):
        load_cifar(tmp_path, "cifar10", train=False)


@pytest.mark.parametrize("name,content,message", [
    ("cifar10", [1, 2, 3], "holds a list; expected a pickled dict with 'data' \\(N, 3072\\) uint8 and 'labels'"),
    ("cifar10", {"images": np.zeros((2, 3072), np.uint8)}, "no 'data' or 'labels' key \\(keys found: 'images'\\)"),
    ("cifar100", {b"data": np.zeros((2, 3072), np.uint8), b"coarse_labels": [0, 1]}, "no 'fine_labels' key"),
    ("cifar10", {"data": np.zeros((2, 3072), np.uint8), "labels": ["a", "b"]}, "'labels' a list of integers"),
])
def test_non_batch_pickle_is_named_with_what_was_expected(tmp_path, name, content, message):
    folder = write_cifar_pickles(tmp_path, name, num_train=10, num_test=5)
    test_file = folder / ("test_batch" if name == "cifar10" else "test")
    with open(test_file, "wb") as f:
        pickle.dump(content, f, protocol=2)
    with pytest.raises(ValueError, match=message) as err:
        load_cifar(tmp_path, name, train=False)
    assert str(test_file) in str(err.value)


def test_truncated_or_empty_batch_is_named(tmp_path):
    folder = write_cifar_pickles(tmp_path, "cifar10", num_train=10, num_test=5)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:100])
    with pytest.raises(ValueError, match="test_batch is not a valid cifar10 batch"):
        load_cifar(tmp_path, "cifar10", train=False)
    (folder / "test_batch").write_bytes(b"")
    with pytest.raises(ValueError, match="test_batch is not a valid cifar10 batch"):
        load_cifar(tmp_path, "cifar10", train=False)


def test_digits_rejects_a_non_boolean_split():
    with pytest.raises(ValueError, match="load_digits\\(train='false'\\): expected True"):
        load_digits(train="false")


@pytest.mark.parametrize("call,message", [
    (lambda root: write_cifar_pickles(root, "cifar10", num_train=0), "num_train=0: expected an integer >= 1"),
    (lambda root: write_cifar_pickles(root, "cifar10", num_train=3), "at least one image per file"),
    (lambda root: write_cifar_pickles(root, "svhn"), "unknown CIFAR dataset 'svhn'"),
    (lambda root: write_image_folder(root, per_class=-1), "per_class=-1: expected an integer >= 1"),
])
def test_synthetic_writers_reject_bad_counts(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written


def test_digits_split_is_fixed_stratified_and_disjoint():
    x, y = load_digits(train=True)
    t, u = load_digits(train=False)
    assert x.shape == (1297, 32, 32, 3) and t.shape == (500, 32, 32, 3) and x.dtype == np.uint8
    assert set(np.bincount(u)) <= {48, 49, 50, 51}  # 500 test images, ~50 per class
    again, _ = load_digits(train=False)
    np.testing.assert_array_equal(again, t)
    # every image appears in exactly one split: 1797 distinct rows overall (digits has a few exact duplicates,
    # so compare counts of rows rather than assuming uniqueness)
    assert len(x) + len(t) == 1797
    assert (x[..., 0] == x[..., 1]).all()  # grey replicated to RGB
    assert x.max() == 255 and x.min() == 0

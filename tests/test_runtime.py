"""runtime/: atomic writes leave the old file on failure; RNG capture/restore round-trips; SciPy-exact filters."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from corruptions.filters import BORDER_MODES, gaussian_filter
from runtime.files import atomic_write, atomic_write_json, data_root
from runtime.seeding import capture_rng_state, derive_seed, restore_rng_state, seed_everything


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(RuntimeError), atomic_write(target, "w") as f:
        f.write('{"half": ')
        raise RuntimeError("killed mid-write")
    assert target.read_text().strip().startswith('{\n  "ok": 1')
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left behind


def test_rng_state_round_trip_reproduces_every_generator():
    seed_everything(3)
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    random.random(), np.random.rand(), torch.rand(1)
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_derive_seed_depends_on_every_part():
    seeds = {derive_seed(1, e, i) for e in range(3) for i in range(100)}
    assert len(seeds) == 300
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)


def test_data_root_prefers_explicit_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AUGMIX_DATA_ROOT", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root("/somewhere") == type(tmp_path)("/somewhere")


@pytest.mark.parametrize("mode", BORDER_MODES)
@pytest.mark.parametrize("sigma", [0.1, 0.6, 2.0, 25.0])
def test_gaussian_filter_matches_scipy(mode, sigma):
    x = np.random.default_rng(0).random((2, 3, 20, 20))
    truncate = 3.0 if mode == "reflect" else 4.0
    expected = ndi.gaussian_filter(x, (0, 0, sigma, sigma), mode=mode, truncate=truncate)
    got = gaussian_filter(torch.from_numpy(x), sigma, mode=mode, truncate=truncate).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os

    target = tmp_path / "shared.npy"
    atomic_write_json(target, [1])
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600


def test_malloc_tuning_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    import platform

    from runtime.allocator import retain_freed_memory

    monkeypatch.setenv("AUGMIX_MALLOC_TUNING", "0")
    assert retain_freed_memory() is False
    monkeypatch.delenv("AUGMIX_MALLOC_TUNING")
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert retain_freed_memory() is True


def test_resolve_device_names_the_option_and_the_value():
    import torch

    from runtime.devices import DeviceError, resolve_device

    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match=r"--device='tpu'"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="train.device='nonsense'"):
        resolve_device("nonsense", option="train.device")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")


def test_environment_record_and_version_tag():
    import torch

    from runtime.environment import environment_record, package_version, torch_version_tag

    env = environment_record("cpu", peer="x")
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["peer"] == "x"
    assert package_version() != "unknown"  # read from pyproject.toml without tomllib
    assert torch_version_tag() == "torch" + torch.__version__.split("+")[0]

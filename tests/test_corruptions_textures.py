"""corruptions/textures.py: the frost textures are found without importing their package, decode and rescale
exactly as the reference's OpenCV calls (§4.5), and a missing folder gives an error that says what to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from corruptions.textures import (
    FROST_DIR_ENV,
    FROST_FILES,
    find_frost_dir,
    load_frost_textures,
    read_frost_texture,
    resize_linear_opencv,
)

ROOT = Path(__file__).resolve().parents[1]
# §4.5 table: rescaled (H, W) per file at x0.2 (CIFAR) and x0.3 (64 px); frost6 is listed though never drawn.
SCALED_SIZES = {
    0.2: ((120, 180), (63, 112), (63, 112), (70, 105), (99, 132), (65, 97)),
    0.3: ((180, 270), (94, 168), (94, 168), (105, 158), (148, 198), (97, 146)),
}


@pytest.fixture(scope="module")
def frost_dir() -> Path:
    return find_frost_dir()


def test_textures_are_found_and_loaded_without_importing_their_package_or_opencv():
    code = ("import sys; from corruptions.textures import find_frost_dir, load_frost_textures; "
            "find_frost_dir(); load_frost_textures(0.3); "
            "print(sorted(m for m in ('imagecorruptions', 'cv2', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", FROST_FILES)
def test_decoding_equals_opencv_imread_in_rgb_order(frost_dir, name):
    ours = read_frost_texture(frost_dir / name)
    reference = cv2.imread(str(frost_dir / name))[..., ::-1]  # colour mode drops alpha; BGR -> RGB
    assert ours.dtype == np.uint8
    assert np.array_equal(ours, reference)


@pytest.mark.parametrize("scale", [0.2, 0.3, 0.25, 0.7])
def test_resize_equals_cv2_resize_bit_for_bit(frost_dir, scale):
    for k, name in enumerate(FROST_FILES):
        texture = cv2.imread(str(frost_dir / name))
        ours = resize_linear_opencv(texture, scale)
        assert np.array_equal(ours, cv2.resize(texture, (0, 0), fx=scale, fy=scale)), name
        if scale in SCALED_SIZES:
            assert ours.shape[:2] == SCALED_SIZES[scale][k]


def test_cifar_scale_is_plain_subsampling(frost_dir):
    # scale 0.2: source coordinate (o + 0.5) * 5 - 0.5 = 5 o + 2 exactly, so weights (2048, 0): texture[2::5, 2::5].
    texture = read_frost_texture(frost_dir / "frost1.png")
    assert np.array_equal(resize_linear_opencv(texture, 0.2), texture[2::5, 2::5])


def test_resize_rejects_enlargement_and_exact_halving():
    image = np.zeros((10, 10, 3), np.uint8)
    for scale in (1.5, 0.5, 0.0):
        with pytest.raises(ValueError, match="0 < scale < 1"):
            resize_linear_opencv(image, scale)


def test_loaded_stack_holds_every_texture_rescaled_in_rgb_and_is_cached(frost_dir):
    textures = load_frost_textures(0.3)
    assert textures.stack.dtype == torch.uint8 and textures.stack.shape == (6, 3, 180, 270)
    assert tuple(zip(textures.heights, textures.widths)) == SCALED_SIZES[0.3]
    frost4 = cv2.resize(cv2.imread(str(frost_dir / "frost4.jpg")), (0, 0), fx=0.3, fy=0.3)[..., ::-1]
    h, w = textures.heights[3], textures.widths[3]
    assert np.array_equal(textures.stack[3, :, :h, :w].permute(1, 2, 0).numpy(), frost4)
    assert load_frost_textures(0.3) is textures  # decoded once per (scale, device, folder)


def test_argument_and_environment_folder_take_precedence(frost_dir, tmp_path, monkeypatch):
    for sub in ("arg", "env"):
        (tmp_path / sub).mkdir()
        for name in FROST_FILES:
            shutil.copy(frost_dir / name, tmp_path / sub / name)
    monkeypatch.setenv(FROST_DIR_ENV, str(tmp_path / "env"))
    assert find_frost_dir() == tmp_path / "env"
    assert find_frost_dir(tmp_path / "arg") == tmp_path / "arg"


def test_named_folder_missing_a_file_is_an_error_naming_it_and_how_to_get_them(frost_dir, tmp_path, monkeypatch):
    for name in FROST_FILES[:-1]:
        shutil.copy(frost_dir / name, tmp_path / name)
    monkeypatch.setenv(FROST_DIR_ENV, str(tmp_path))
    message = r"\(from \$AUGMIX_FROST_DIR\): frost6\.jpg; .*pip install imagecorruptions-imaug"
    with pytest.raises(FileNotFoundError, match=message):
        find_frost_dir()  # no silent fallback to the package folder


def test_no_package_and_no_folder_is_an_error_saying_how_to_get_them(monkeypatch):
    monkeypatch.delenv(FROST_DIR_ENV, raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"not installed.*pip install imagecorruptions-imaug.*frost_dir="):
        find_frost_dir()


def test_unsupported_image_mode_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "frost1.png"
    cv2.imwrite(str(path), np.zeros((4, 4), np.uint16))  # 16-bit grey
    with pytest.raises(ValueError, match=r"frost1\.png.*mode"):
        read_frost_texture(path)

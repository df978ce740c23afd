"""H.264 MP4 writing of ImageNet-P videos (generation/video.py): a lossy round trip at 1 fps in both pixel formats
and the reference's encoder settings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from generation import video
from generation.sources import resize_shorter_side
from runtime.files import sha256_file
from runtime.video import decode_video
from tests.perturbation_oracles import psnr


@pytest.mark.parametrize("pix_fmt", video.PIX_FMTS)
def test_mp4_round_trip_is_close(pix_fmt, tmp_path):
    import skimage.data

    photo = np.asarray(resize_shorter_side(Image.fromarray(skimage.data.astronaut())))
    frames = np.stack([np.roll(photo[16:240, 16:240], 2 * t, axis=1) for t in range(31)])  # (31, 224, 224, 3)
    settings = video.settings_for("translate", "ultrafast", pix_fmt)
    digest = video.write_mp4(tmp_path / "v.mp4", frames, settings)
    assert digest == sha256_file(tmp_path / "v.mp4")
    decoded = decode_video(tmp_path / "v.mp4")
    assert decoded.shape == frames.shape
    assert psnr(decoded, frames) > 30 and np.abs(decoded.astype(int) - frames).mean() < 3  # H.264 is lossy
    import av

    with av.open(str(tmp_path / "v.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == pix_fmt
        assert stream.average_rate == 1  # 1 fps


def test_encoder_settings_follow_the_reference():
    assert video.settings_for("gaussian_noise_2") == video.VideoSettings(crf=None, tune="grain")  # -tune grain
    assert video.settings_for("rotate") == video.VideoSettings(crf=20, tune=None)  # -crf 20
    assert video.settings_for("rotate").preset == "veryslow" and video.settings_for("rotate").pix_fmt == "yuv444p"
    with pytest.raises(ValueError, match="frames must be"):
        video.encode_mp4(np.zeros((3, 8, 8), np.uint8))

"""H.264 MP4 files of ImageNet-P videos through PyAV (libx264), and a decoder for checks (docs/corruptions.md §8.3).

The reference renders every frame to PNG and calls a static ffmpeg 4.0.2: ``ffmpeg -r 1 -framerate 1 -i img%01d.png
-vcodec libx264 {-crf 20 | -tune grain} -preset veryslow out.mp4``. H.264 is lossy, so regenerated videos never
match the released bytes or decoded frames exactly; they match the settings.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from generation.output import writing
from runtime.files import atomic_write_bytes
from runtime.video import decode_video

FPS = 1                    # -r 1 -framerate 1
X264_PRESET = "veryslow"   # -preset veryslow
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")  # libx264's speed presets
CRF = 20                   # -crf 20 for every sequence except the noise ones ...
NOISE_TUNE = "grain"       # ... which use -tune grain with x264's default CRF (23)
# ffmpeg picks the encoder's pixel format closest to the input when none is given: for the reference's RGB PNG
# frames and libx264 that is yuv444p ("No pixel format specified, yuv444p for H.264 encoding chosen"), so the
# released videos are most likely 4:4:4. yuv420p (what most players expect) is available as an option.
PIX_FMT = "yuv444p"
PIX_FMTS = ("yuv444p", "yuv420p")


@dataclass(frozen=True)
class VideoSettings:
    """libx264 settings of one video file."""

    crf: int | None = CRF           # None: x264's default (23)
    tune: str | None = None         # "grain" for the noise sequences
    preset: str = X264_PRESET       # x264 speed preset; the release used veryslow
    pix_fmt: str = PIX_FMT          # yuv444p (the reference's ffmpeg default for RGB input) or yuv420p
    threads: int = 0                # x264 threads, 0 = auto

    def describe(self) -> dict:
        return {"codec": "libx264", "fps": FPS, **asdict(self)}


def settings_for(perturbation: str, preset: str = X264_PRESET, pix_fmt: str = PIX_FMT,
                 threads: int = 0) -> VideoSettings:
    """The reference's encoder settings for a perturbation: noise sequences (and their difficulty variants) tune
    for grain at the default CRF, every other sequence uses CRF 20."""
    if pix_fmt not in PIX_FMTS:
        raise ValueError(f"unsupported pixel format {pix_fmt!r}; valid: {', '.join(PIX_FMTS)}")
    if "noise" in perturbation:
        return VideoSettings(crf=None, tune=NOISE_TUNE, preset=preset, pix_fmt=pix_fmt, threads=threads)
    return VideoSettings(crf=CRF, tune=None, preset=preset, pix_fmt=pix_fmt, threads=threads)


def encode_mp4(frames: np.ndarray, settings: VideoSettings = VideoSettings()) -> bytes:
    """Encode (T, H, W, 3) uint8 RGB frames as an H.264 MP4 at 1 fps, in memory.

    Raises:
        ValueError: for a wrong shape or dtype, or odd sizes with 4:2:0 (chroma needs even sides).
    """
    import av  # local: only ImageNet-P needs PyAV

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if settings.pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"yuv420p needs even frame sides, got {height}x{width}")
    options = {"preset": settings.preset, "threads": str(settings.threads)}
    if settings.crf is not None:
        options["crf"] = str(settings.crf)
    if settings.tune is not None:
        options["tune"] = settings.tune
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, settings.pix_fmt
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))  # flush the encoder's delayed frames
    return buffer.getvalue()


def write_mp4(path: str | os.PathLike, frames: np.ndarray, settings: VideoSettings = VideoSettings()) -> str:
    """Encode ``frames`` (T, H, W, 3) uint8 with :func:`encode_mp4` and write the file atomically; return its sha256."""
    data = encode_mp4(frames, settings)
    with writing(path):
        atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def write_listed_mp4(out_dir: Path, relpath: str, frames: np.ndarray, settings: VideoSettings) -> tuple[str, str]:
    """Write one video of a tree; return its checksum-list entry (sha256, relative path)."""
    return write_mp4(out_dir / relpath, frames, settings), relpath


def encoder_versions() -> dict[str, str]:
    """PyAV and the FFmpeg libraries it bundles (their libx264 decides the bytes of every video)."""
    import av

    return {"av": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))) or "unknown"}


def video_frame_count(path: str | os.PathLike) -> int:
    """Frames of a video by decoding it (container metadata can be missing or wrong); ValueError if unreadable."""
    return len(decode_video(path))

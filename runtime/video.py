"""Video decoding shared by the -P reader (loaders/released.py) and the -P writer's checks (generation/video.py)."""

from __future__ import annotations

import os

import numpy as np


def decode_video(path: str | os.PathLike) -> np.ndarray:
    """Every frame of a video, decoded with PyAV (FFmpeg) to RGB: (T, H, W, 3) uint8.

    Raises:
        ValueError: naming the file when it is not a readable video or holds no frame.
    """
    import av  # local: only -P needs it

    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise ValueError(f"{path} is not a readable video: {exc}") from exc
    if not frames:
        raise ValueError(f"{path}: the video has no frames")
    return np.stack(frames)

"""MP4 writing with PyAV (FFmpeg inside the wheel): H.264 encoded so the bytes repeat exactly for a seed."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 8


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = FPS) -> None:
    """Encode RGB frames (H, W, 3 uint8; even sides) as an H.264 MP4 at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One thread and no assembly: x264's SIMD paths gave different bytes from run to run (measured:
        # about 1 in 5 encodes of the same frames differed); plain C with one thread repeats exactly.
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "28", "preset": "ultrafast", "threads": "1", "x264-params": "asm=0"}
        for k, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)  # explicit timestamps: nothing left to guess
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

"""H.264 MP4 through PyAV (bundled FFmpeg with libx264; no external binary): yuv420p,
faststart; frames are streamed to the encoder, never all held in memory. Output goes to a
temporary file that is renamed into place only when complete."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

QUALITY = {
    "fast": {"preset": "ultrafast", "crf": "26"},
    "quality": {"preset": "medium", "crf": "20"},
}


def encode(
    frames: Iterable[np.ndarray],
    output: Path,
    fps: int,
    size: tuple[int, int],
    quality: str = "fast",
) -> int:
    """Encode `frames` (H, W, 3 uint8) to `output`; return the frame count."""
    if quality not in QUALITY:
        raise ValueError(f"unknown quality {quality!r} (qualities: {', '.join(QUALITY)})")
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}.mp4")
    count = 0
    try:
        with av.open(str(tmp), mode="w", options={"movflags": "faststart"}) as container:
            stream = container.add_stream("libx264", rate=Fraction(fps))
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = dict(QUALITY[quality])
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
                count += 1
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return count

"""Video export speed as JSON lines: frames per second end to end (render + encode) for a
500-step episode at 1080p and 1440p, and in the same run the encoder alone on pre-rendered
frames at the same settings. One frame per step (fps 5 at speed 1), fast preset.
Run: python benchmarks/video.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recording import record_episode  # noqa: E402  (benchmarks share the episode maker)

from townlet.recording import read_episode  # noqa: E402
from townlet.video.encode import encode  # noqa: E402
from townlet.video.export import VideoOptions, export_episode  # noqa: E402
from townlet.video.render import FrameRenderer, frame_size  # noqa: E402

STEPS, DISTINCT = 500, 50


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        episode = read_episode(record_episode(Path(tmp), STEPS))
        for preset in ("1080p", "1440p"):
            options = VideoOptions(fps=5, preset=preset, quality="fast")
            start = time.perf_counter()
            result = export_episode(episode, Path(tmp) / f"{preset}.mp4", options)
            end_to_end = result["frames"] / (time.perf_counter() - start)
            renderer = FrameRenderer(episode, frame_size(preset))
            made = [renderer.render(i) for i in range(DISTINCT)]
            start = time.perf_counter()
            count = encode(
                (made[i % DISTINCT] for i in range(STEPS)),
                Path(tmp) / "enc.mp4",
                5,
                frame_size(preset),
                "fast",
            )
            encoder = count / (time.perf_counter() - start)
            conditions = {
                "preset": preset,
                "steps": STEPS,
                "frames": result["frames"],
                "quality": "fast (ultrafast)",
            }
            for name, value in (
                ("video_end_to_end_fps", end_to_end),
                ("video_encoder_only_fps", encoder),
                ("video_end_to_end_vs_encoder", end_to_end / encoder),
            ):
                unit = "ratio" if name.endswith("encoder") else "frames/s"
                print(
                    json.dumps(
                        {"name": name, "value": round(value, 3), "unit": unit, **conditions}
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Export a recorded episode of a run to MP4.

python experiments/export.py run_dir=PATH episode_id=500
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from townlet.config import register_configs
from townlet.recording import RecordingError, RecordingIndex
from townlet.video.export import ExportError, VideoOptions, export_from_index

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run = Path(cfg.run_dir)
    output = (
        Path(cfg.output) if cfg.output else run / "videos" / f"episode_{cfg.episode_id:06d}.mp4"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    options = VideoOptions.from_settings(cfg, progress=sys.stderr.isatty())
    try:
        result = export_from_index(
            RecordingIndex.for_run(run, create=False), cfg.episode_id, output, options
        )
    except (ExportError, RecordingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(
        f"wrote {result['output']}: {result['frames']} frames, {result['width']}x{result['height']}"
    )


if __name__ == "__main__":
    main()

"""`townlet video export|batch` (also `python -m townlet.recording ...`): export recorded
episodes to MP4 from the shell (one episode, or every episode an index lists)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from townlet.config.choices import VideoQuality, VideoStyle
from townlet.config.schema import VideoSettings
from townlet.recording import RecordingError, RecordingIndex
from townlet.util.argtypes import index_int
from townlet.video.export import ExportError, VideoOptions, export_from_index
from townlet.video.render import PRESETS


def _options(args: argparse.Namespace) -> VideoOptions:
    options = VideoOptions.from_settings(args, progress=VideoOptions.progress_for_stderr())
    options.progress_every_sec = args.progress_every
    return options


def _index(args: argparse.Namespace) -> RecordingIndex:
    return RecordingIndex(Path(args.database), Path(args.recordings), create=False)


def _export(args: argparse.Namespace) -> int:
    result = export_from_index(_index(args), args.episode_id, Path(args.output), _options(args))
    print(
        f"wrote {result['output']}: {result['frames']} frames, {result['width']}x{result['height']}"
    )
    return 0


def _batch(args: argparse.Namespace) -> int:
    index, options, out = _index(args), _options(args), Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = index.list(args.stage, args.reason, args.min_reward, args.max_reward, args.limit)
    failed = []
    for k, row in enumerate(rows, 1):
        target = out / f"episode_{row['episode_id']:06d}.mp4"
        try:
            result = export_from_index(index, row["episode_id"], target, options)
            print(
                f"[{k}/{len(rows)}] wrote {result['output']}: {result['frames']} frames", flush=True
            )
        except Exception as error:  # report this episode (even an unforeseen fault), go on
            failed.append(row["episode_id"])
            text, label = _short(error), f"episode {row['episode_id']}"
            print(
                f"error: {text if text.startswith(label) else f'{label}: {text}'}", file=sys.stderr
            )
    print(
        f"exported {len(rows) - len(failed)} of {len(rows)} episode(s)"
        + (f"; failed: {', '.join(map(str, failed))}" if failed else "")
    )
    return 1 if failed else 0


def _short(error: BaseException) -> str:
    text = str(error) if isinstance(error, (ExportError, RecordingError)) else repr(error)
    return text if len(text) <= 300 else text[:300] + "..."


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database", required=True, help="recordings.db (or a version-1 metrics.db)"
    )
    parser.add_argument("--recordings", required=True, help="the folder holding the episode files")
    defaults = VideoSettings()
    parser.add_argument("--fps", type=int, default=defaults.fps)
    parser.add_argument("--speed", type=float, default=defaults.speed, help="1 = 5 steps/s")
    parser.add_argument("--style", choices=tuple(VideoStyle), default=defaults.style)
    parser.add_argument("--preset", choices=tuple(PRESETS), default=defaults.preset)
    parser.add_argument("--dpi", type=int, help="frame size 16*DPI x 9*DPI instead of a preset")
    parser.add_argument("--start", type=int, default=defaults.start, help="first step")
    parser.add_argument("--end", type=int, default=defaults.end, help="step after the last")
    parser.add_argument(
        "--days", default=defaults.days, help="a day range instead of steps, e.g. 2-3 (from 1)"
    )
    parser.add_argument(
        "--quality",
        choices=tuple(VideoQuality),
        default=defaults.quality,
        help=VideoQuality.__doc__,
    )
    parser.add_argument(
        "--agent", help="whose meters the chart draws over time (default: the first recorded)"
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        metavar="SEC",
        help="without a terminal, a progress line every SEC seconds (default 5)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="townlet video", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    export = verbs.add_parser("export", help="one episode to MP4")
    export.add_argument("episode_id", type=index_int)
    export.add_argument("--output", required=True)
    _common(export)
    export.set_defaults(func=_export)
    batch = verbs.add_parser("batch", help="every episode matching the filters to MP4")
    batch.add_argument("--output-dir", required=True)
    batch.add_argument("--stage", type=index_int)
    batch.add_argument("--reason")
    batch.add_argument("--min-reward", type=float)
    batch.add_argument("--max-reward", type=float)
    batch.add_argument("--limit", type=index_int, default=100)
    _common(batch)
    batch.set_defaults(func=_batch)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ExportError, RecordingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

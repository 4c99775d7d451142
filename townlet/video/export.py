"""Export recorded episodes to MP4, one or a batch.

Timing: at speed 1 an episode plays at BASE_RATE steps per second (the replay server's default
step delay of 0.2 s), so a video has ceil(steps * fps / (BASE_RATE * speed)) frames; frame i shows
step floor(i * BASE_RATE * speed / fps). Each step is drawn once and its frame repeated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from townlet.config.schema import VideoSettings
from townlet.recording import RecordingError, RecordingIndex
from townlet.recording.format import Episode
from townlet.video.encode import encode
from townlet.video.render import FrameRenderer, frame_size

BASE_RATE = 5.0


class ExportError(ValueError):
    """An export that cannot be made; the message says which episode and why."""


@dataclass
class VideoOptions(VideoSettings):
    """The settings plus how to show progress (the terminal's choice, not a config's): "bar"
    (tqdm, on a terminal), "lines" (a plain line every few seconds to stderr: logs, CI, nohup),
    or "off" (library use)."""

    progress: str = "off"
    progress_every_sec: float = 5.0

    @classmethod
    def from_settings(cls, source: Any, progress: str = "off") -> VideoOptions:
        """From anything with the settings' names (parsed arguments, a Hydra config)."""
        names = [f.name for f in dataclasses.fields(VideoSettings)]
        return cls(**{name: getattr(source, name) for name in names}, progress=progress)

    @staticmethod
    def progress_for_stderr() -> str:
        return "bar" if sys.stderr.isatty() else "lines"

    def check(self) -> None:
        if self.fps < 1:
            raise ExportError(f"fps must be >= 1, got {self.fps}")
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise ExportError(f"speed must be a positive number, got {self.speed}")
        if self.dpi is not None and not 8 <= self.dpi <= 480:
            raise ExportError(f"dpi must be in 8-480 (frames of 16*dpi x 9*dpi), got {self.dpi}")


def frame_count(steps: int, fps: int, speed: float) -> int:
    return math.ceil(steps * fps / (BASE_RATE * speed))


def frames(
    renderer: FrameRenderer, first: int, last: int, options: VideoOptions
) -> Iterator[np.ndarray]:
    total = frame_count(last - first, options.fps, options.speed)
    drawn_step, drawn = -1, None
    bar = tqdm(total=total, unit="frame", disable=options.progress != "bar", leave=False)
    lines = (
        _ProgressLines(renderer.episode, total, options.progress_every_sec)
        if options.progress == "lines"
        else None
    )
    for i in range(total):
        step = first + min(int(i * BASE_RATE * options.speed / options.fps), last - first - 1)
        if step != drawn_step:
            drawn_step, drawn = step, renderer.render(step)
        bar.update(1)
        if lines is not None:
            lines.update(i + 1)
        yield drawn
    bar.close()


class _ProgressLines:
    """`episode 3: frame 240/600 (40%), 31 frames/s, about 12 s left` every few seconds."""

    def __init__(self, episode: Episode, total: int, every_sec: float) -> None:
        self.label = f"episode {episode.metadata.get('episode_id')}"
        self.total, self.every = total, every_sec
        self.start = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        print(
            f"{self.label}: frame {done}/{self.total} ({done / self.total:.0%}), "
            f"{rate:.0f} frames/s, about {(self.total - done) / max(rate, 1e-9):.0f} s left",
            file=sys.stderr,
            flush=True,
        )


def prefetch(source: Iterator[np.ndarray], depth: int = 4) -> Iterator[np.ndarray]:
    """Run `source` in a thread, `depth` frames ahead, so drawing overlaps encoding (both spend
    most of their time in C code that releases the GIL). Errors surface in the consumer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as error:  # handed to the consumer
            buffer.put(error)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def day_range(episode: Episode, days: str) -> tuple[int, int]:
    """[first, last) steps of a day range ("2-3", "5"; day 1 is the episode's first, each
    midnight starts the next), from the recording's clock."""
    low, _, high = days.partition("-")
    try:
        first_day, last_day = int(low), int(high or low)
    except ValueError:
        raise ExportError(f"days={days!r}: give a day or a range of days, e.g. 2-3") from None
    if not 1 <= first_day <= last_day:
        raise ExportError(f"days={days!r}: days count from 1, the first no later than the last")
    if "time_of_day" not in episode.columns:
        raise ExportError("days: this recording has no clock (time_of_day) to find its days in")
    tod = episode.columns["time_of_day"].astype(np.int64)
    midnights = (np.nonzero(tod[1:] < tod[:-1])[0] + 1).tolist()
    starts = [0, *midnights, episode.steps]
    if first_day > len(starts) - 1:
        raise ExportError(
            f"days={days!r}: the episode has {len(starts) - 1} day(s) of {episode.steps} steps"
        )
    return starts[first_day - 1], starts[min(last_day, len(starts) - 1)]


def export_episode(episode: Episode, output: Path, options: VideoOptions) -> dict:
    options.check()
    if options.days is not None:
        if options.start != 0 or options.end is not None:
            raise ExportError("days: give either a day range or start/end steps, not both")
        first, last = day_range(episode, options.days)
    else:
        first, last = (
            options.start,
            episode.steps if options.end is None else min(options.end, episode.steps),
        )
    if not 0 <= first < last:
        raise ExportError(
            f"episode {episode.metadata.get('episode_id')}: empty step range "
            f"[{options.start}, {options.end}) of {episode.steps} steps"
        )
    output = Path(output)
    if output.is_dir():
        raise ExportError(f"{output}: is a folder; give a file name ending in .mp4")
    if not output.parent.is_dir():
        raise ExportError(f"{output}: output folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK):
        raise ExportError(f"{output}: output folder {output.parent} is not writable")
    size = frame_size(options.preset, options.dpi)
    agents = list(episode.header["agent_ids"])
    if options.agent is not None and options.agent not in agents:
        raise ExportError(
            f"agent {options.agent!r} is not in episode {episode.metadata.get('episode_id')} "
            f"(agents: {', '.join(agents)})"
        )
    renderer = FrameRenderer(episode, size, options.style, focus=options.agent)
    try:
        count = encode(
            prefetch(frames(renderer, first, last, options)),
            output,
            options.fps,
            size,
            options.quality,
        )
    except OSError as error:  # /proc, a full disk, a folder that vanished
        with contextlib.suppress(OSError):
            output.unlink(missing_ok=True)
        raise ExportError(
            f"{output}: cannot write the video ({error.strerror or error})"
        ) from error
    return {
        "episode_id": episode.metadata.get("episode_id"),
        "output": str(output),
        "frames": count,
        "width": size[0],
        "height": size[1],
        "steps": last - first,
    }


def export_from_index(
    index: RecordingIndex, episode_id: int, output: Path, options: VideoOptions
) -> dict:
    try:
        episode = index.load(episode_id)
    except RecordingError as error:
        raise ExportError(str(error)) from error
    return export_episode(episode, output, options)

"""The recordings a server may open: one run, every run under a folder, or a database and a
recordings folder given directly (version-1 files included). Files are only ever opened inside
the recordings folders given (the index refuses other paths).

Opened episodes are kept as ready-to-send frames in a cache bounded by bytes, and any one
episode is refused beyond `max_episode_bytes` decompressed. Methods are called from worker
threads (the server keeps its event loop free), so the cache and the indexes sit behind a lock.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from townlet.recording import RecordingError, RecordingIndex, read_episode
from townlet.recording.index import INDEX_NAME
from townlet.serve.frames import EpisodeFrames

log = logging.getLogger("townlet.serve")
ORDER_KEYS = {  # the index's orders, applied again across runs
    "newest": lambda r: (-r["timestamp"], r["run"], -r["episode_id"]),
    "oldest": lambda r: (r["timestamp"], r["run"], r["episode_id"]),
    "episode": lambda r: (r["run"], r["episode_id"]),
    "reward": lambda r: (-r["total_reward"], r["run"], r["episode_id"]),
}

MAX_EPISODE_BYTES = 64 * 2**20
CACHE_BYTES = 256 * 2**20
ENCODE_AHEAD = 256
"""Steps encoded when an episode is opened (5 s of playback at 50 steps/s)."""


@dataclass
class RunSource:
    name: str
    index: RecordingIndex
    run_dir: Path | None  # for live mode: checkpoints and the run's config


class Catalog:
    def __init__(
        self,
        sources: list[RunSource],
        max_episode_bytes: int = MAX_EPISODE_BYTES,
        cache_bytes: int = CACHE_BYTES,
        skipped: list[str] | None = None,
    ) -> None:
        self.sources = {s.name: s for s in sources}
        self.max_episode_bytes, self.cache_bytes = max_episode_bytes, cache_bytes
        self.skipped = list(skipped or [])
        """One line per run left out at start-up (an unreadable index)."""
        self._cache: OrderedDict[tuple[str, int], EpisodeFrames] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    @classmethod
    def for_run(cls, run_dir: Path, **limits: int) -> Catalog:
        run_dir = Path(run_dir)
        if not (run_dir / INDEX_NAME).is_file():
            return cls([], **limits)
        return cls(
            [RunSource(run_dir.name, RecordingIndex.for_run(run_dir, create=False), run_dir)],
            **limits,
        )

    @classmethod
    def for_root(cls, root: Path, **limits: int) -> Catalog:
        """Every run under `root`; a run whose index cannot be read is skipped with a warning."""
        sources, skipped = [], []
        for db in sorted(Path(root).rglob(INDEX_NAME)):
            run = db.parent
            name = str(run.relative_to(root))
            try:
                sources.append(RunSource(name, RecordingIndex.for_run(run, create=False), run))
            except RecordingError as error:
                skipped.append(f"skipped run {name}: {error}")
                log.warning("skipped run %s: %s", name, error)
        return cls(sources, skipped=skipped, **limits)

    @classmethod
    def for_database(cls, db: Path, recordings: Path, **limits: int) -> Catalog:
        index = RecordingIndex(Path(db), Path(recordings), create=False)
        name = Path(recordings).resolve().parent.name or "recordings"
        return cls([RunSource(name, index, None)], **limits)

    @property
    def available(self) -> bool:
        return bool(self.sources)

    def runs(self) -> list[str]:
        return list(self.sources)

    def list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        limit = filters.get("limit", 100)
        wanted = [filters["run"]] if filters.get("run") else list(self.sources)
        rows: list[dict[str, Any]] = []
        with self._lock:
            for name in wanted:
                source = self.sources.get(name)
                if source is None:
                    raise KeyError(f"Unknown run: {name}")
                for row in source.index.list(
                    filters.get("stage"),
                    filters.get("reason"),
                    filters.get("min_reward"),
                    filters.get("max_reward"),
                    limit,
                    filters.get("order", "newest"),
                ):
                    rows.append({**row, "run": name})
        rows.sort(key=ORDER_KEYS[filters.get("order", "newest")])
        return rows[:limit]

    def first_names(self) -> dict[str, Any] | None:
        """Meter and action names of the first readable recording, for the `connected` reply."""
        with self._lock:
            for source in self.sources.values():
                rows = source.index.list(limit=1)
                if rows:
                    try:
                        episode = source.index.load(rows[0]["episode_id"], self.max_episode_bytes)
                    except RecordingError:
                        return None
                    return {
                        "meter_names": episode.header["meter_names"],
                        "action_names": episode.header["action_names"],
                    }
        return None

    def _source_for(self, episode_id: int, run: str | None) -> RunSource:
        if run is not None:
            if run not in self.sources:
                raise LookupError(f"Unknown run: {run}")
            return self.sources[run]
        for source in self.sources.values():
            if source.index.get(episode_id) is not None:
                return source
        raise LookupError(f"Recording not found: {episode_id}")

    def frames(self, episode_id: int, run: str | None = None) -> EpisodeFrames:
        """The episode's frames, every state update encoded; raises LookupError (unknown) or
        RuntimeError ("Failed to load episode N: <reason>"). Only the index look-up and the
        cache hold the lock: reading, decoding and encoding a file do not block other loads."""
        with self._lock:
            source = self._source_for(episode_id, run)
            key = (source.name, episode_id)
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            row = source.index.get(episode_id)
            if row is None:
                raise LookupError(f"Recording not found: {episode_id}")
            try:
                path = source.index.resolve(row)
            except RecordingError as error:
                raise _failed(episode_id, str(error).split(": ", 1)[-1]) from error
        try:
            episode = read_episode(path, f"episode {episode_id}", self.max_episode_bytes)
        except RecordingError as error:
            raise _failed(episode_id, str(error).split(": ", 1)[-1]) from error
        try:
            frames = EpisodeFrames(episode, source.name)
            frames.encode_ahead(ENCODE_AHEAD)
        except Exception as error:  # a decodable file whose content the checks did not foresee
            raise _failed(episode_id, f"{type(error).__name__}: {error}") from error
        with self._lock:
            if key in self._cache:  # another client opened it meanwhile: count it once
                return self._cache[key]
            self._cache[key] = frames
            self._cached_bytes += frames.nbytes
            while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cached_bytes -= evicted.nbytes
        return frames


def _failed(episode_id: int, reason: str) -> RuntimeError:
    return RuntimeError(f"Failed to load episode {episode_id}: {reason}")

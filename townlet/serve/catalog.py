"""The recordings a server may open: one run, every run under a folder, or a database and a
recordings folder given directly (version-1 files included). Files are only ever opened inside
the recordings folders given (the index refuses other paths)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from townlet.recording import RecordingError, RecordingIndex
from townlet.recording.format import Episode
from townlet.recording.index import FOLDER_NAME, INDEX_NAME

CACHE_EPISODES = 32


@dataclass
class RunSource:
    name: str
    index: RecordingIndex
    run_dir: Path | None  # for live mode: checkpoints and the run's config


class Catalog:
    def __init__(self, sources: list[RunSource]) -> None:
        self.sources = {s.name: s for s in sources}
        self._cache: OrderedDict[tuple[str, int], Episode] = OrderedDict()

    @classmethod
    def for_run(cls, run_dir: Path) -> Catalog:
        run_dir = Path(run_dir)
        if not (run_dir / INDEX_NAME).is_file():
            return cls([])
        return cls(
            [RunSource(run_dir.name, RecordingIndex.for_run(run_dir, create=False), run_dir)]
        )

    @classmethod
    def for_root(cls, root: Path) -> Catalog:
        sources = []
        for db in sorted(Path(root).rglob(INDEX_NAME)):
            run = db.parent
            name = str(run.relative_to(root))
            sources.append(RunSource(name, RecordingIndex.for_run(run, create=False), run))
        return cls(sources)

    @classmethod
    def for_database(cls, db: Path, recordings: Path) -> Catalog:
        index = RecordingIndex(Path(db), Path(recordings), create=False)
        return cls([RunSource(Path(recordings).resolve().parent.name or "recordings", index, None)])

    @property
    def available(self) -> bool:
        return bool(self.sources)

    def runs(self) -> list[str]:
        return list(self.sources)

    def list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        limit = filters.get("limit", 100)
        wanted = [filters["run"]] if filters.get("run") else list(self.sources)
        rows: list[dict[str, Any]] = []
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
            ):
                rows.append({**row, "run": name})
        rows.sort(key=lambda r: (r["run"], r["episode_id"]))
        return rows[:limit]

    def source_for(self, episode_id: int, run: str | None) -> RunSource:
        if run is not None:
            if run not in self.sources:
                raise KeyError(f"Unknown run: {run}")
            return self.sources[run]
        for source in self.sources.values():
            if source.index.get(episode_id) is not None:
                return source
        raise LookupError(f"Recording not found: {episode_id}")

    def load(self, episode_id: int, run: str | None = None) -> tuple[str, Episode, dict[str, Any]]:
        source = self.source_for(episode_id, run)
        row = source.index.get(episode_id)
        if row is None:
            raise LookupError(f"Recording not found: {episode_id}")
        key = (source.name, episode_id)
        if key not in self._cache:
            try:
                self._cache[key] = source.index.load(episode_id)
            except RecordingError as error:
                reason = str(error).split(": ", 1)[-1]
                raise RuntimeError(f"Failed to load episode {episode_id}: {reason}") from error
            if len(self._cache) > CACHE_EPISODES:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return source.name, self._cache[key], row


def index_folder(run_dir: Path) -> Path:
    return Path(run_dir) / FOLDER_NAME

"""The recordings index (SQLite, WAL) and the files it points to.

A recording is written as its file first (temporary name, fsync, rename) and indexed second, so
a process killed at any point leaves no half file under a real name and no row without its
file; `reindex` rebuilds the table from the files. Paths in the index are relative to the
recordings folder and are never followed outside it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lz4.frame

from townlet.recording.format import Episode, RecordingError, decode_episode, encode_episode
from townlet.util.atomic import atomic_write_bytes

INDEX_NAME = "recordings.db"
FOLDER_NAME = "recordings"
SEED_COLUMNS = (
    "episode_id",
    "survival_steps",
    "total_reward",
    "curriculum_stage",
    "recording_reason",
    "timestamp",
    "file_path",
    "file_size_bytes",
    "compressed_size_bytes",
)
"""The columns users of the system we replace already query (and the server lists)."""
COLUMNS = (*SEED_COLUMNS, "run_id", "scenario", "recording_reasons", "format_version")
SCHEMA = """
CREATE TABLE IF NOT EXISTS episode_recordings (
    episode_id INTEGER PRIMARY KEY,
    survival_steps INTEGER NOT NULL,
    total_reward REAL NOT NULL,
    curriculum_stage INTEGER NOT NULL,
    recording_reason TEXT NOT NULL,
    timestamp REAL NOT NULL,
    file_path TEXT NOT NULL,
    file_size_bytes INTEGER NOT NULL,
    compressed_size_bytes INTEGER NOT NULL,
    run_id TEXT,
    scenario TEXT,
    recording_reasons TEXT,
    format_version INTEGER
);
CREATE INDEX IF NOT EXISTS idx_recordings_stage ON episode_recordings(curriculum_stage);
CREATE INDEX IF NOT EXISTS idx_recordings_reason ON episode_recordings(recording_reason);
CREATE INDEX IF NOT EXISTS idx_recordings_reward ON episode_recordings(total_reward);
"""


def episode_file_name(episode_id: int) -> str:
    return f"episode_{episode_id:06d}.msgpack.lz4"


class RecordingIndex:
    """`recordings.db` plus the folder of episode files it indexes."""

    def __init__(self, db_path: Path, recordings_dir: Path, create: bool = True) -> None:
        self.db_path, self.recordings_dir = Path(db_path), Path(recordings_dir)
        if not create and not self.db_path.is_file():
            raise RecordingError(f"{self.db_path}: no recordings index")
        if create:
            self.recordings_dir.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(self.db_path, timeout=30, check_same_thread=False)
        self.connection.row_factory = sqlite3.Row
        if create:
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.executescript(SCHEMA)
            self.connection.commit()
        self.columns = {
            row[1] for row in self.connection.execute("PRAGMA table_info(episode_recordings)")
        }
        if "episode_id" not in self.columns:
            raise RecordingError(f"{self.db_path}: no episode_recordings table")

    @classmethod
    def for_run(cls, run_dir: Path, create: bool = True) -> RecordingIndex:
        return cls(Path(run_dir) / INDEX_NAME, Path(run_dir) / FOLDER_NAME, create)

    def close(self) -> None:
        self.connection.close()

    # ------------------------------------------------------------------ writing
    def write(self, episode: Episode) -> dict[str, Any]:
        """File first (atomic), then its row. Never overwrites an existing recording."""
        meta = episode.metadata
        episode_id = int(meta["episode_id"])
        name = episode_file_name(episode_id)
        path = self.recordings_dir / name
        if path.exists() or self.get(episode_id) is not None:
            raise RecordingError(f"episode {episode_id}: already recorded in {self.recordings_dir}")
        data, size = encode_episode(episode)
        atomic_write_bytes(path, data)
        row = row_for(episode, name, size, len(data))
        self.insert([row])
        return row

    def insert(self, rows: Iterable[dict[str, Any]]) -> None:
        placeholders = ", ".join("?" for _ in COLUMNS)
        with self.connection:
            self.connection.executemany(
                f"INSERT INTO episode_recordings ({', '.join(COLUMNS)}) VALUES ({placeholders})",
                [tuple(row[c] for c in COLUMNS) for row in rows],
            )

    # ------------------------------------------------------------------ reading
    def _select(self) -> str:
        return ", ".join(c if c in self.columns else f"NULL AS {c}" for c in COLUMNS)

    def get(self, episode_id: int) -> dict[str, Any] | None:
        row = self.connection.execute(
            f"SELECT {self._select()} FROM episode_recordings WHERE episode_id = ?", (episode_id,)
        ).fetchone()
        return _row_dict(row) if row else None

    def list(
        self,
        stage: int | None = None,
        reason: str | None = None,
        min_reward: float | None = None,
        max_reward: float | None = None,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if stage is not None:
            where.append("curriculum_stage = ?")
            params.append(stage)
        if reason is not None:
            if "recording_reasons" in self.columns:
                where.append("(recording_reason = ? OR instr(recording_reasons, ?) > 0)")
                params += [reason, json.dumps(reason)]
            else:
                where.append("recording_reason = ?")
                params.append(reason)
        if min_reward is not None:
            where.append("total_reward >= ?")
            params.append(min_reward)
        if max_reward is not None:
            where.append("total_reward <= ?")
            params.append(max_reward)
        sql = f"SELECT {self._select()} FROM episode_recordings"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY episode_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_row_dict(r) for r in self.connection.execute(sql, params)]

    def max_episode_id(self) -> int | None:
        value = self.connection.execute(
            "SELECT MAX(episode_id) FROM episode_recordings"
        ).fetchone()[0]
        return None if value is None else int(value)

    def resolve(self, row: dict[str, Any]) -> Path:
        """The row's file, refusing any path that leaves the recordings folder.

        Our paths are relative to the recordings folder; version-1 indexes store them relative
        to the folder holding the database. Both are tried, both must stay inside the folder."""
        label = f"episode {row['episode_id']}"
        relative = Path(str(row["file_path"]))
        root = self.recordings_dir.resolve()
        inside = False
        if not relative.is_absolute():
            for base in (root, self.db_path.parent.resolve()):
                candidate = (base / relative).resolve()
                if root in candidate.parents:
                    inside = True
                    if candidate.is_file():
                        return candidate
        if not inside:
            raise RecordingError(
                f"{label}: file_path {str(relative)!r} points outside the recordings folder"
            )
        raise RecordingError(f"{label}: file {str(relative)!r} is missing")

    def load(self, episode_id: int) -> Episode:
        row = self.get(episode_id)
        if row is None:
            raise RecordingError(f"episode {episode_id}: not in the index")
        return read_episode(self.resolve(row), f"episode {episode_id}")


def read_episode(path: Path, label: str | None = None) -> Episode:
    label = label or Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise RecordingError(f"{label}: cannot read {path} ({error.strerror})") from error
    return decode_episode(data, label)


def row_for(episode: Episode, file_path: str, size: int, compressed: int) -> dict[str, Any]:
    meta, header = episode.metadata, episode.header
    reasons = list(meta.get("recording_reasons") or [meta.get("recording_reason", "")])
    return {
        "episode_id": int(meta["episode_id"]),
        "survival_steps": int(meta["survival_steps"]),
        "total_reward": float(meta["total_reward"]),
        "curriculum_stage": int(meta["curriculum_stage"]),
        "recording_reason": meta.get("recording_reason") or (reasons[0] if reasons else ""),
        "timestamp": float(meta["timestamp"]),
        "file_path": file_path,
        "file_size_bytes": int(size),
        "compressed_size_bytes": int(compressed),
        "run_id": header.get("run_id"),
        "scenario": header.get("scenario"),
        "recording_reasons": json.dumps(reasons),
        "format_version": int(header.get("format_version", 2)),
    }


def _row_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    reasons = out.get("recording_reasons")
    out["recording_reasons"] = json.loads(reasons) if reasons else [out["recording_reason"]]
    return out


def reindex(run_dir: Path) -> tuple[int, list[str]]:
    """Rebuild `recordings.db` from the files in `recordings/`; return (rows, problems).

    Files that do not decode are reported and left out; leftover temporary files of a killed
    writer are removed. The new index replaces the old one atomically.
    """
    run_dir = Path(run_dir)
    folder = run_dir / FOLDER_NAME
    if not folder.is_dir():
        raise RecordingError(f"{folder}: no recordings folder")
    for leftover in folder.glob(".*.tmp-*"):
        leftover.unlink()
    rows, problems = [], []
    for path in sorted(folder.glob("episode_*.msgpack.lz4")):
        try:
            data = path.read_bytes()
            episode = decode_episode(data, path.name)
            rows.append(row_for(episode, path.name, len(lz4.frame.decompress(data)), len(data)))
        except RecordingError as error:
            problems.append(str(error))
    tmp = run_dir / f".{INDEX_NAME}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    fresh = RecordingIndex(tmp, folder)
    fresh.insert(rows)
    fresh.connection.execute("PRAGMA journal_mode=DELETE")
    fresh.close()
    for suffix in ("-wal", "-shm"):
        (run_dir / f"{INDEX_NAME}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, run_dir / INDEX_NAME)
    return len(rows), problems

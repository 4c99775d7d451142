"""The recordings index (SQLite, WAL) and the files it points to.

A recording is written as its file first (temporary name, fsync, rename) and indexed second, so
a process killed at any point leaves no half file under a real name and no row without its
file. Episode ids are claimed in the index inside a write transaction (`claim`), so any number
of writers (training, live sessions, other processes) never take the same id. `reindex` merges
the files into the table in place: it adds rows for files that have none and drops rows whose
file is gone, never a live writer's rows or temporary files. Paths in the index are relative to
the recordings folder and are never followed outside it.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from townlet.recording.format import (
    DEFAULT_MAX_BYTES,
    Episode,
    RecordingError,
    decode_episode,
    decompress,
    encode_episode,
)
from townlet.util.atomic import atomic_write_bytes
from townlet.util.run_dir import RunDir

INDEX_NAME = RunDir.of(".").recordings_index.name  # recordings.db
FOLDER_NAME = RunDir.of(".").recordings.name  # recordings
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
CREATE TABLE IF NOT EXISTS episode_claims (
    episode_id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    source INTEGER
);
CREATE INDEX IF NOT EXISTS idx_claims_source ON episode_claims(owner, source);
CREATE INDEX IF NOT EXISTS idx_recordings_stage ON episode_recordings(curriculum_stage);
CREATE INDEX IF NOT EXISTS idx_recordings_reason ON episode_recordings(recording_reason);
CREATE INDEX IF NOT EXISTS idx_recordings_reward ON episode_recordings(total_reward);
"""


FILE_PATTERN = re.compile(r"episode_(\d{6,})\.msgpack\.lz4")
TEMP_PATTERN = re.compile(r"\..+\.tmp-(\d+)")
MAX_EPISODE_ID = 2**63 - 1


ORDERS = {
    "newest": "timestamp DESC, episode_id DESC",
    "oldest": "timestamp ASC, episode_id ASC",
    "episode": "episode_id ASC",
    "reward": "total_reward DESC, episode_id ASC",
}
"""Orders a listing can take; lists shown to people default to newest first, as in the system
we replace."""


def episode_file_name(episode_id: int) -> str:
    return f"episode_{episode_id:06d}.msgpack.lz4"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class NotATableError(RecordingError):
    """The index names a view (or anything but a table) where its tables belong."""


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
        try:
            if create:
                self.connection.execute("PRAGMA journal_mode=WAL")
                self.connection.executescript(SCHEMA)
                self.connection.commit()
            kinds = dict(
                self.connection.execute(
                    "SELECT name, type FROM sqlite_master WHERE name IN "
                    "('episode_recordings', 'episode_claims')"
                ).fetchall()
            )
            self.columns = {
                row[1] for row in self.connection.execute("PRAGMA table_info(episode_recordings)")
            }
        except sqlite3.DatabaseError as error:
            self.connection.close()
            if create:
                raise  # reindex rebuilds an unreadable index
            raise RecordingError(
                f"{self.db_path}: not a SQLite recordings index ({error})"
            ) from error
        for name, kind in kinds.items():  # a VIEW can be endless (WITH RECURSIVE)
            if kind != "table":
                self.connection.close()
                raise NotATableError(f"{self.db_path}: {name} is a {kind}, not a table")
        if "episode_id" not in self.columns:
            self.connection.close()
            raise RecordingError(f"{self.db_path}: no episode_recordings table")

    @classmethod
    def for_run(cls, run_dir: Path, create: bool = True) -> RecordingIndex:
        return cls(Path(run_dir) / INDEX_NAME, Path(run_dir) / FOLDER_NAME, create)

    def close(self) -> None:
        self.connection.close()

    # ------------------------------------------------------------------ writing
    def claim(self, owner: str, wanted: int | None = None) -> tuple[int, bool]:
        """Claim an episode id for `owner` in one write transaction: (id, fresh).

        `wanted` is the producer's own episode number (training's counter). If this owner
        already claimed an id for it, that id comes back, with fresh False once it is recorded
        (a resumed run replaying an episode). Otherwise `wanted` itself is claimed when nobody
        holds it, else the next id after every claimed or recorded one. Concurrent writers in
        any number of threads or processes never get the same id."""
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            episode_id = self._claim(owner, wanted)
            fresh = episode_id is None
            if fresh:
                top = connection.execute(
                    "SELECT MAX(m) FROM (SELECT MAX(episode_id) AS m FROM episode_claims "
                    "UNION ALL SELECT MAX(episode_id) FROM episode_recordings)"
                ).fetchone()[0]
                episode_id = 0 if top is None else int(top) + 1
                connection.execute(
                    "INSERT INTO episode_claims VALUES (?, ?, ?)", (episode_id, owner, wanted)
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if fresh:
            return episode_id, True
        return episode_id, self.get(episode_id) is None

    def _claim(self, owner: str, wanted: int | None) -> int | None:
        """The id `owner` already holds (or may take) for `wanted`; None: claim a fresh one."""
        if wanted is None:
            return None
        connection = self.connection
        mine = connection.execute(
            "SELECT episode_id FROM episode_claims WHERE owner = ? AND source = ?",
            (owner, wanted),
        ).fetchone()
        if mine is not None:
            return int(mine[0])
        holder = connection.execute(
            "SELECT owner, source FROM episode_claims WHERE episode_id = ?", (wanted,)
        ).fetchone()
        if holder is not None:  # ours when this owner claimed the id itself (a live session)
            return wanted if holder[0] == owner and holder[1] is None else None
        if self.get(wanted) is None:
            connection.execute(
                "INSERT INTO episode_claims VALUES (?, ?, ?)", (wanted, owner, wanted)
            )
        return wanted  # a row without a claim: recorded before claims existed (or reindexed)

    def write(self, episode: Episode) -> dict[str, Any]:
        """File first (atomic), then its row. Never overwrites an existing recording."""
        meta = episode.metadata
        episode_id = int(meta["episode_id"])
        name = episode_file_name(episode_id)
        path = self.recordings_dir / name
        if path.exists() or self.get(episode_id) is not None:
            raise RecordingError(f"episode {episode_id}: already recorded in {self.recordings_dir}")
        return self._store(episode)  # a reindex may index the new file before its row is in

    def insert(self, rows: Iterable[dict[str, Any]], replace: bool = False) -> None:
        placeholders = ", ".join("?" for _ in COLUMNS)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        with self.connection:
            self.connection.executemany(
                f"{verb} INTO episode_recordings ({', '.join(COLUMNS)}) VALUES ({placeholders})",
                [tuple(row[c] for c in COLUMNS) for row in rows],
            )

    def rewrite(self, episode: Episode) -> dict[str, Any]:
        """Replace a recorded episode's file (atomically) and its row, e.g. with a new reason."""
        return self._store(episode)

    def _store(self, episode: Episode) -> dict[str, Any]:
        """The episode's file (atomically), then its row (replacing any row of that id)."""
        episode_id = int(episode.metadata["episode_id"])
        name = episode_file_name(episode_id)
        data, size = encode_episode(episode)
        atomic_write_bytes(self.recordings_dir / name, data)
        row = row_for(episode, name, size, len(data))
        self.insert([row], replace=True)
        return row

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
        order: str = "episode",
    ) -> list[dict[str, Any]]:
        if order not in ORDERS:
            raise RecordingError(f"unknown order {order!r} (orders: {', '.join(ORDERS)})")
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
        sql += f" ORDER BY {ORDERS[order]}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_row_dict(r) for r in self.connection.execute(sql, params)]

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

    def ids_hint(self, most: int = 12) -> str:
        """The ids a user can ask for instead, for error messages."""
        ids = [
            int(r[0])
            for r in self.connection.execute(
                "SELECT episode_id FROM episode_recordings ORDER BY episode_id LIMIT ?", (most + 1,)
            )
        ]
        if not ids:
            return "the index is empty"
        shown = ", ".join(map(str, ids[:most])) + (", ..." if len(ids) > most else "")
        return f"recorded: {shown}"

    def load(self, episode_id: int, max_bytes: int | None = None) -> Episode:
        row = self.get(episode_id)
        if row is None:
            raise RecordingError(f"episode {episode_id}: not in the index ({self.ids_hint()})")
        return read_episode(self.resolve(row), f"episode {episode_id}", max_bytes)


def read_episode(path: Path, label: str | None = None, max_bytes: int | None = None) -> Episode:
    """Read and decode one episode file; `max_bytes` caps its size on disk and decompressed."""
    label = label or Path(path).name
    try:
        if max_bytes is not None and Path(path).stat().st_size > max_bytes:
            raise RecordingError(f"{label}: larger than the {max_bytes / 2**20:.0f} MiB allowed")
        data = Path(path).read_bytes()
    except OSError as error:
        raise RecordingError(f"{label}: cannot read the file ({error.strerror})") from error
    return decode_episode(data, label, max_bytes)


def row_for(episode: Episode, file_path: str, size: int, compressed: int) -> dict[str, Any]:
    """The index row of an episode file; a metadata value the index cannot hold (a NaN reward,
    an id beyond SQLite's integers, a count that is not a number) is a RecordingError naming
    the file and the field, so one bad file is reported instead of aborting a merge."""
    meta, header = episode.metadata, episode.header
    reasons = list(meta.get("recording_reasons") or [meta.get("recording_reason", "")])
    return {
        "episode_id": _metadata_int(meta, "episode_id", file_path, MAX_EPISODE_ID),
        "survival_steps": _metadata_int(meta, "survival_steps", file_path),
        "total_reward": _metadata_float(meta, "total_reward", file_path),
        "curriculum_stage": _metadata_int(meta, "curriculum_stage", file_path),
        "recording_reason": str(meta.get("recording_reason") or (reasons[0] if reasons else "")),
        "timestamp": _metadata_float(meta, "timestamp", file_path),
        "file_path": file_path,
        "file_size_bytes": int(size),
        "compressed_size_bytes": int(compressed),
        "run_id": _optional_text(header.get("run_id")),
        "scenario": _optional_text(header.get("scenario")),
        "recording_reasons": json.dumps([str(r) for r in reasons]),
        "format_version": int(header.get("format_version", 2)),
    }


def _metadata_int(meta: dict[str, Any], key: str, label: str, most: int = 2**63 - 1) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        what = "episode id" if key == "episode_id" else key
        raise RecordingError(f"{label}: {what} {value!r} is not an integer in [0, {most}]")
    return value


def _metadata_float(meta: dict[str, Any], key: str, label: str) -> float:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordingError(f"{label}: {key} {value!r} is not a finite number")
    return float(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _row_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    reasons = out.get("recording_reasons")
    out["recording_reasons"] = json.loads(reasons) if reasons else [out["recording_reason"]]
    return out


def reindex(run_dir: Path, notify: Any = None) -> tuple[int, list[str]]:
    """Merge the files in `recordings/` into `recordings.db`; return (rows, problems).

    Safe while writers run: rows are only added (for files that have none) or dropped (for files
    that are gone: a writer writes its file before its row and never deletes one), inside one
    write transaction; temporary files are removed only when the process that wrote them has
    exited. Files that do not decode, whose name is not an episode file name (a stray
    `episode_000010 (copy).msgpack.lz4`) or whose id differs from their name are reported and
    left out. A database that cannot be read is rebuilt from the files. `notify(text)` is told
    when the merge waits for a writer's transaction."""
    run_dir = Path(run_dir)
    folder = run_dir / FOLDER_NAME
    if not folder.is_dir():
        raise RecordingError(f"{folder}: no recordings folder")
    _remove_dead_temp_files(folder)
    db = run_dir / INDEX_NAME
    try:
        index = RecordingIndex(db, folder)
    except (sqlite3.DatabaseError, NotATableError) as error:
        if notify is not None:
            notify(f"{db}: unreadable ({error}); rebuilding it from the files")
        _set_aside(db)
        index = RecordingIndex(db, folder)
    try:
        return _merge(index, folder, notify)
    finally:
        index.close()


def _remove_dead_temp_files(folder: Path) -> None:
    for leftover in folder.glob(".*.tmp-*"):
        match = TEMP_PATTERN.fullmatch(leftover.name)
        if match is None or not _pid_alive(int(match.group(1))):
            leftover.unlink(missing_ok=True)


def _set_aside(db: Path) -> None:
    """Move an unreadable index (and its journal files) aside, keeping it for inspection."""
    stamp = f"corrupt-{os.getpid()}"
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            os.replace(path, db.with_name(f"{db.name}.{stamp}{suffix}"))


def _merge(index: RecordingIndex, folder: Path, notify: Any) -> tuple[int, list[str]]:
    problems: list[str] = []
    files: dict[int, Path] = {}
    for path in sorted(folder.glob("*.msgpack.lz4")):
        match = FILE_PATTERN.fullmatch(path.name)
        if match is None:
            problems.append(f"{path.name}: not an episode file name (episode_NNNNNN.msgpack.lz4)")
            continue
        episode_id = int(match.group(1))
        if episode_id in files:  # one id under two zero paddings: keep the canonical name
            keep, drop = sorted(
                (files[episode_id], path), key=lambda p: p.name != episode_file_name(episode_id)
            )
            problems.append(f"{drop.name}: episode {episode_id} is also {keep.name}; left out")
            path = keep
        files[episode_id] = path
    connection = index.connection
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        if notify is not None:
            notify(f"{index.db_path}: waiting for a writer's transaction to finish")
        connection.execute("PRAGMA busy_timeout = 60000")
        connection.execute("BEGIN IMMEDIATE")
    try:
        indexed = {
            int(r[0]): r[1]
            for r in connection.execute("SELECT episode_id, file_path FROM episode_recordings")
        }
        for episode_id, file_path in indexed.items():
            if not (folder / str(file_path)).is_file() and episode_id not in files:
                connection.execute(
                    "DELETE FROM episode_recordings WHERE episode_id = ?", (episode_id,)
                )
        placeholders = ", ".join("?" for _ in COLUMNS)
        for episode_id, path in files.items():
            if episode_id in indexed:
                continue
            try:
                if path.stat().st_size > DEFAULT_MAX_BYTES:
                    raise RecordingError(f"{path.name}: larger than the recordings' size cap")
                data = path.read_bytes()
                episode = decode_episode(data, path.name)
                stored = int(episode.metadata["episode_id"])
                if stored != episode_id:
                    raise RecordingError(f"{path.name}: holds episode {stored}, not {episode_id}")
                row = row_for(episode, path.name, len(decompress(data, path.name)), len(data))
            except RecordingError as error:
                problems.append(str(error))
                continue
            except (KeyError, TypeError, ValueError, OSError) as error:
                problems.append(f"{path.name}: {error!r}")
                continue
            connection.execute(
                f"INSERT INTO episode_recordings ({', '.join(COLUMNS)}) VALUES ({placeholders})",
                tuple(row[c] for c in COLUMNS),
            )
        count = connection.execute("SELECT COUNT(*) FROM episode_recordings").fetchone()[0]
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return int(count), problems

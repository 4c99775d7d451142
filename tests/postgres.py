"""A PostgreSQL server of the test's own: a fresh cluster in a temporary folder on a free port,
listening on 127.0.0.1 only, stopped and removed afterwards (Debian's `postgresql` binaries;
as root, the cluster runs as the `postgres` user, since initdb refuses root)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from townlet.util.net import free_port


def binaries() -> Path | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(found) / "initdb").exists():
            return Path(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@contextlib.contextmanager
def postgres_server(databases: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """Yield {database: URL} for fresh databases on a fresh server."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="townlet-pg-"))
    folder.chmod(0o777)
    data, port = folder / "data", free_port()
    run = lambda *argv: subprocess.run(  # noqa: E731 - a local shorthand
        [*as_user, *map(str, argv)], check=True, capture_output=True, text=True, timeout=120
    )
    try:
        run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "townlet", "--no-sync")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(
            bindir / "pg_ctl", "-D", data, "-o", options, "-l", folder / "server.log", "-w", "start"
        )
        try:
            import psycopg2

            connection = psycopg2.connect(
                host="127.0.0.1", port=port, user="townlet", dbname="postgres"
            )
            connection.autocommit = True
            with connection.cursor() as cursor:
                for name in databases:
                    cursor.execute(f'CREATE DATABASE "{name}"')
            connection.close()
            yield {name: f"postgresql://townlet@127.0.0.1:{port}/{name}" for name in databases}
        finally:
            run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)

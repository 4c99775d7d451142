"""`townlet serve --db DB --recordings DIR [--checkpoint PATH] [--port 8766]`: the server for
recordings made outside a run directory, version-1 files included (also
`python -m townlet.serve ...`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from townlet.config.schema import ServeOptionsConfig
from townlet.recording import RecordingError
from townlet.serve.catalog import Catalog
from townlet.serve.server import ServeOptions, TownletServer, run_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="townlet serve", description=__doc__)
    parser.add_argument("--db", required=True, help="recordings.db or a version-1 metrics.db")
    parser.add_argument("--recordings", required=True, help="the folder holding the episode files")
    parser.add_argument(
        "--checkpoint", help="a training checkpoint for live mode (its run dir is used)"
    )
    defaults = ServeOptionsConfig()
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--step-delay", type=float, default=defaults.step_delay)
    parser.add_argument("--token", help="required when --host is not localhost")
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        help="a web origin besides the viewer page's own that may connect (repeatable)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="a Host name besides loopback ones accepted without a token (repeatable)",
    )
    parser.add_argument("--max-episode-mb", type=float, default=defaults.max_episode_mb)
    args = parser.parse_args(argv)
    try:
        if not 0 < args.max_episode_mb < 2**20:
            raise ValueError(f"--max-episode-mb {args.max_episode_mb}: must be in (0, 1048576)")
        catalog = Catalog.for_database(
            Path(args.db), Path(args.recordings), max_episode_bytes=int(args.max_episode_mb * 2**20)
        )
        live = None
        if args.checkpoint:
            from townlet.serve.live import LiveFactory

            live = LiveFactory.from_checkpoint(Path(args.checkpoint))
        options = ServeOptions(
            args.host,
            args.port,
            args.step_delay,
            args.token,
            tuple(args.allowed_origin),
            tuple(args.allowed_host),
        )
        server = TownletServer(catalog, options, live)
    except (RecordingError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_forever(server))
    return 0

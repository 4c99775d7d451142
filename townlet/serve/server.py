"""The replay and live-inference server: the viewer page over HTTP at `/`, the protocol over a
WebSocket at `/ws`, on one port.

Each connection is its own `Session` (mode, episode, cursor, speed, playing); one client's
commands never move another's playback. Outbound messages go through a bounded per-session
buffer drained by that session's sender task: when a client stops reading, its stale
`state_update`s are dropped (never control replies or errors) and nobody else slows down.
A bad message gets an `{"type": "error"}` reply and the connection lives on.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import math
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from townlet.recording.index import SEED_COLUMNS
from townlet.serve.catalog import Catalog
from townlet.serve.frames import EpisodeFrames

log = logging.getLogger("townlet.serve")
STATIC = Path(__file__).resolve().parent / "static"
MAX_MESSAGE_BYTES = 64 * 1024
OUTBOUND_LIMIT = 64
CONTROL_ACTIONS = ("play", "pause", "step", "reset", "seek", "set_speed")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ProtocolError(ValueError):
    """A message the server cannot act on; its text is sent back as the error message."""


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8766
    step_delay: float = 0.2
    token: str | None = None


@dataclass(eq=False)  # identity: sessions live in a set
class Session:
    """One connection's state and its outbound buffer."""

    connection: ServerConnection
    mode: str = "idle"  # idle | replay | live
    frames: EpisodeFrames | None = None
    cursor: int = 0
    speed: float = 1.0
    playing: bool = False
    live: Any = None
    outbox: collections.deque = field(default_factory=collections.deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0

    def send(self, payload: bytes | dict[str, Any], droppable: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        if droppable and len(self.outbox) >= OUTBOUND_LIMIT:
            for i, (_, can_drop) in enumerate(self.outbox):
                if can_drop:  # the oldest stale frame goes, never a reply
                    del self.outbox[i]
                    self.dropped += 1
                    break
        self.outbox.append((data, droppable))
        self.ready.set()

    def error(self, message: str) -> None:
        self.send({"type": "error", "message": message})


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"Invalid {name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ProtocolError(f"Invalid {name}: {value} is not finite")
    return float(value)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"Invalid {name}: expected an integer, got {type(value).__name__}")
    return value


def parse(raw: str | bytes) -> tuple[str, dict[str, Any]]:
    """(command, message) from a text frame, accepting both control forms."""
    if isinstance(raw, bytes):
        raise ProtocolError("Binary frames are not supported; send JSON text")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(f"Malformed JSON: {error}") from error
    if not isinstance(message, dict):
        raise ProtocolError("A message must be a JSON object")
    if "command" in message:
        command = message["command"]
    elif message.get("type") == "replay_control":
        command = message.get("action")
        if command is None:
            raise ProtocolError("replay_control needs an 'action'")
    elif "type" in message:
        command = message["type"]
    else:
        raise ProtocolError("A message needs a 'type' or a 'command'")
    if not isinstance(command, str):
        raise ProtocolError(f"Invalid command: expected a string, got {type(command).__name__}")
    return command, message


class TownletServer:
    def __init__(self, catalog: Catalog, options: ServeOptions, live_factory: Any = None) -> None:
        if options.host not in LOCAL_HOSTS and not options.token:
            raise ValueError(f"serving on {options.host} beyond localhost requires serve.token")
        if options.step_delay < 0:
            raise ValueError("serve.step_delay must be >= 0")
        self.catalog, self.options, self.live_factory = catalog, options, live_factory
        self.sessions: set[Session] = set()
        self.server: Server | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Server:
        self.server = await serve(
            self.handler,
            self.options.host,
            self.options.port,
            process_request=self.process_request,
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=64,
            ping_interval=20,
        )
        return self.server

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    # ------------------------------------------------------------------ HTTP: the page
    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlparse(request.path)
        if url.path == "/ws":
            if self.options.token:
                given = parse_qs(url.query).get("token", [""])[0]
                if not hmac.compare_digest(given, self.options.token):
                    return _response(403, b"forbidden: a valid token is required\n", "text/plain")
            return None
        name = "index.html" if url.path in ("/", "") else url.path.lstrip("/")
        path = (STATIC / name).resolve()
        if STATIC not in path.parents or not path.is_file():
            return _response(404, b"not found\n", "text/plain")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return _response(200, path.read_bytes(), kind)

    # ------------------------------------------------------------------ WebSocket
    async def handler(self, connection: ServerConnection) -> None:
        session = Session(connection)
        self.sessions.add(session)
        sender = asyncio.create_task(self._sender(session))
        player = asyncio.create_task(self._player(session))
        try:
            session.send(self._connected())
            async for raw in connection:
                try:
                    command, message = parse(raw)
                    await self._dispatch(session, command, message)
                except ProtocolError as error:
                    session.error(str(error))
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(session)
            for task in (sender, player):
                task.cancel()
            if session.live is not None:
                session.live.close()

    def _connected(self) -> dict[str, Any]:
        names = self._names()
        return {
            "type": "connected",
            "mode": "idle",
            "runs": self.catalog.runs(),
            "replay_available": self.catalog.available,
            "live_available": self.live_factory is not None,
            **names,
        }

    def _names(self) -> dict[str, Any]:
        if self.live_factory is not None:
            return self.live_factory.names()
        for source in self.catalog.sources.values():
            rows = source.index.list(limit=1)
            if rows:
                try:
                    episode = source.index.load(rows[0]["episode_id"])
                    return {
                        "meter_names": episode.header["meter_names"],
                        "action_names": episode.header["action_names"],
                    }
                except Exception:  # an unreadable first file: names come with each episode
                    break
        return {"meter_names": [], "action_names": []}

    async def _sender(self, session: Session) -> None:
        try:
            while True:
                await session.ready.wait()
                while session.outbox:
                    data, _ = session.outbox.popleft()
                    await session.connection.send(data.decode())
                session.ready.clear()
        except ConnectionClosed:
            pass

    async def _player(self, session: Session) -> None:
        """Advance the session's playback at step_delay / speed while it is playing.

        Steps are due on an absolute schedule (due += delay), so time spent sending does not
        accumulate as drift; a wake-up (play, speed change) restarts the schedule from now."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            if not session.playing:
                session.wake.clear()
                await session.wake.wait()
                due = loop.time()
                continue
            if session.mode == "replay":
                self._advance_replay(session)
            elif session.mode == "live":
                await session.live.advance(session)
            delay = self.options.step_delay / session.speed
            if delay > 0:
                due = max(
                    due + delay, loop.time() - delay
                )  # never race to catch up more than a step
                try:
                    await asyncio.wait_for(session.wake.wait(), timeout=max(0.0, due - loop.time()))
                    session.wake.clear()
                    due = loop.time()
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)
                while len(session.outbox) >= OUTBOUND_LIMIT and session.playing:
                    await asyncio.sleep(0.001)  # unlimited speed: as fast as this client reads

    def _advance_replay(self, session: Session) -> None:
        frames = session.frames
        if session.cursor >= frames.steps - 1:
            session.playing = False
            session.send({"type": "replay_finished", "episode_id": frames.episode_id})
            return
        session.cursor += 1
        session.send(frames.encoded(session.cursor), droppable=True)

    # ------------------------------------------------------------------ commands
    async def _dispatch(self, session: Session, command: str, message: dict[str, Any]) -> None:
        if command == "list_recordings":
            self._list(session, message)
        elif command == "load_replay":
            self._load_replay(session, message)
        elif command == "load_checkpoint":
            await self._load_checkpoint(session, message)
        elif command in CONTROL_ACTIONS:
            self._control(session, command, message)
        else:
            raise ProtocolError(f"Unknown message type: {command}")

    def _list(self, session: Session, message: dict[str, Any]) -> None:
        if not self.catalog.available:
            raise ProtocolError("Replay not available (no database)")
        filters = message.get("filters") or {}
        if not isinstance(filters, dict):
            raise ProtocolError("Invalid filters: expected an object")
        clean: dict[str, Any] = {"limit": 100}
        for key, value in filters.items():
            if value is None:
                continue
            if key in ("stage", "limit"):
                clean[key] = _integer(value, key)
            elif key in ("min_reward", "max_reward"):
                clean[key] = _number(value, key)
            elif key in ("reason", "run"):
                if not isinstance(value, str):
                    raise ProtocolError(f"Invalid {key}: expected a string")
                clean[key] = value
            else:
                raise ProtocolError(f"Unknown filter: {key}")
        if not 1 <= clean["limit"] <= 10_000:
            raise ProtocolError(f"Invalid limit: {clean['limit']} (1-10000)")
        try:
            rows = self.catalog.list(clean)
        except KeyError as error:
            raise ProtocolError(str(error.args[0])) from error
        keys = (*SEED_COLUMNS, "run")
        session.send(
            {"type": "recordings_list", "recordings": [{k: r.get(k) for k in keys} for r in rows]}
        )

    def _load_replay(self, session: Session, message: dict[str, Any]) -> None:
        if not self.catalog.available:
            raise ProtocolError("Replay not available (no database)")
        if "episode_id" not in message:
            raise ProtocolError("load_replay needs an 'episode_id'")
        episode_id = _integer(message["episode_id"], "episode_id")
        run = message.get("run")
        if run is not None and not isinstance(run, str):
            raise ProtocolError("Invalid run: expected a string")
        try:
            run_name, episode, _ = self.catalog.load(episode_id, run)
        except (LookupError, RuntimeError) as error:
            raise ProtocolError(str(error.args[0])) from error
        if session.live is not None:
            session.live.close()
            session.live = None
        session.mode, session.frames, session.cursor, session.playing = (
            "replay",
            EpisodeFrames(episode, run_name),
            0,
            False,
        )
        frames = session.frames
        session.send(
            {
                "type": "replay_loaded",
                "episode_id": episode_id,
                "run": run_name,
                "metadata": frames.metadata,
                "total_steps": frames.steps,
                "meter_names": frames.meters,
                "action_names": frames.actions,
            }
        )
        session.send(frames.encoded(0))

    async def _load_checkpoint(self, session: Session, message: dict[str, Any]) -> None:
        if self.live_factory is None:
            raise ProtocolError("Live mode not available (no checkpoint or run directory)")
        checkpoint = message.get("checkpoint", "latest")
        if not isinstance(checkpoint, str):
            raise ProtocolError("Invalid checkpoint: expected 'latest' or a path")
        try:
            live = self.live_factory.open(checkpoint)
        except (FileNotFoundError, ValueError) as error:
            raise ProtocolError(f"Failed to load checkpoint {checkpoint}: {error}") from error
        if session.live is not None:
            session.live.close()
        session.live, session.mode, session.frames, session.playing = live, "live", None, True
        live.start(session)
        session.wake.set()

    def _control(self, session: Session, action: str, message: dict[str, Any]) -> None:
        if session.mode == "idle":
            raise ProtocolError(f"Nothing to {action}: load a replay or a checkpoint first")
        if action == "set_speed":
            if "speed" not in message:
                raise ProtocolError("set_speed needs a 'speed'")
            speed = _number(message["speed"], "speed")
            if speed <= 0 or speed > 1000:
                raise ProtocolError(f"Invalid speed: {speed} (a finite number in (0, 1000])")
            session.speed = speed
            session.wake.set()
        elif action == "play":
            if not session.playing:  # a second play does not double the speed
                session.playing = True
                session.wake.set()
        elif action == "pause":
            session.playing = False
        elif session.mode == "live":
            if action in ("step", "reset", "seek"):
                raise ProtocolError(
                    f"{action} is for replays; live mode supports play, pause and set_speed"
                )
        elif action == "step":
            session.playing = False
            self._advance_replay(session)
        elif action == "reset":
            session.playing, session.cursor = False, 0
            session.send(session.frames.encoded(0))
        elif action == "seek":
            if "seek_step" not in message:
                raise ProtocolError("seek needs a 'seek_step'")
            step = _integer(message["seek_step"], "seek_step")
            last = session.frames.steps - 1
            if not 0 <= step <= last:
                raise ProtocolError(f"Invalid seek step: {step} (0-{last})")
            session.cursor = step
            session.send(session.frames.encoded(step))


def _response(status: int, body: bytes, kind: str) -> Response:
    reason = {200: "OK", 403: "Forbidden", 404: "Not Found"}[status]
    headers = Headers(
        [("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    )
    return Response(status, reason, headers, body)


async def run_forever(server: TownletServer, ready: asyncio.Event | None = None) -> None:
    await server.start()
    log.info("serving on http://%s:%d (WebSocket at /ws)", server.options.host, server.port)
    print(
        f"Townlet viewer on http://{server.options.host}:{server.port}/  (WebSocket /ws)",
        flush=True,
    )
    if ready is not None:
        ready.set()
    await server.server.serve_forever()

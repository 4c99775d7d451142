"""The replay and live-inference server: the viewer page over HTTP at `/`, the protocol over a
WebSocket at `/ws`, on one port.

Each connection is its own `Session` (mode, episode, cursor, speed, playing); one client's
commands never move another's playback. Outbound messages go through a bounded per-session
buffer drained by that session's sender task: when a client stops reading, its stale
`state_update`s are dropped (never control replies or errors) and nobody else slows down.
A bad message gets an `{"type": "error"}` reply and the connection lives on.

The event loop only moves bytes: opening an episode (decode and encode every frame), loading a
checkpoint and each live inference step run in worker threads, heavy and light jobs in separate
lanes (`lanes.py`: a list never queues behind a rebuild), and each client has at most one such
job in flight (its messages are handled in order). A client that sends without reading is
not read from while its queued replies are over `REPLY_LIMIT`, so its backlog stays bounded
and nobody else waits for it. The WebSocket refuses cross-origin browsers (an `Origin` other
than the page's own host, unless listed in `allowed_origins`) and, with a token, any client
that does not present it.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import math
import mimetypes
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from townlet.config.schema import ServeOptionsConfig
from townlet.recording.index import SEED_COLUMNS
from townlet.serve.catalog import Catalog
from townlet.serve.frames import EpisodeFrames
from townlet.serve.lanes import Lanes
from townlet.serve.protocol import ProtocolError, integer, list_filters, parse, speed

log = logging.getLogger("townlet.serve")
STATIC = Path(__file__).resolve().parent / "static"
MAX_MESSAGE_BYTES = 64 * 1024
OUTBOUND_LIMIT = 64
REPLY_LIMIT = 64
"""Replies queued for a client before the server stops reading its messages."""
MAX_STEP_DELAY = 60.0
SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while another waits (Python's default is 0.005)."""
MIN_WAIT = 0.0005
"""Shorter waits between steps are not slept: the step runs on the next loop iteration."""
BATCH_STEPS = 16
"""Replay steps queued per loop iteration at unlimited speed."""
MAX_LIVE_STEPS_PER_SEC = 200.0
"""Live inference runs a policy and a world tick per step in a worker thread; capping each
session's rate keeps a few clients at full speed from taking every core from the others."""
CONTROL_ACTIONS = ("play", "pause", "step", "reset", "seek", "set_speed")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


_DEFAULTS = ServeOptionsConfig()


@dataclass
class ServeOptions:
    """What the server itself needs of `serve.*` (defaults from the schema, written once)."""

    host: str = _DEFAULTS.host
    port: int = _DEFAULTS.port
    step_delay: float = _DEFAULTS.step_delay
    token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    """Origins (scheme://host:port) besides the page's own that may open the WebSocket."""
    allowed_hosts: tuple[str, ...] = ()
    """Host header names besides loopback ones accepted without a token."""

    def __post_init__(self) -> None:
        delay = self.step_delay
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise ValueError(f"serve.step_delay must be a number, got {delay!r}")
        if not math.isfinite(delay) or not 0 <= delay <= MAX_STEP_DELAY:
            raise ValueError(f"serve.step_delay={delay}: must be a finite number in [0, 60]")
        self.allowed_origins = tuple(o.rstrip("/") for o in self.allowed_origins or ())
        self.allowed_hosts = tuple(h.lower() for h in self.allowed_hosts or ())


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
    room: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    replies: int = 0  # queued messages that are never dropped
    closed: bool = False  # the connection is gone: nothing more is queued

    def send(self, payload: bytes | dict[str, Any], droppable: bool = False) -> None:
        if self.closed:
            return
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        if droppable and len(self.outbox) >= OUTBOUND_LIMIT:
            for i, (_, can_drop) in enumerate(self.outbox):
                if can_drop:  # the oldest stale frame goes, never a reply
                    del self.outbox[i]
                    self.dropped += 1
                    break
        self.outbox.append((data, droppable))
        if not droppable:
            self.replies += 1
            if self.replies >= REPLY_LIMIT:
                self.room.clear()
        self.ready.set()

    def error(self, message: str) -> None:
        self.send({"type": "error", "message": message})

    def sent(self, droppable: bool) -> None:
        if not droppable:
            self.replies -= 1
            if self.replies < REPLY_LIMIT:
                self.room.set()


class TownletServer:
    def __init__(self, catalog: Catalog, options: ServeOptions, live_factory: Any = None) -> None:
        if options.host not in LOCAL_HOSTS and not options.token:
            raise ValueError(f"serving on {options.host} beyond localhost requires serve.token")
        self.catalog, self.options, self.live_factory = catalog, options, live_factory
        self.sessions: set[Session] = set()
        self.server: Server | None = None
        self._first_names: dict[str, Any] | None = None
        self.lanes = Lanes()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Server:
        # Worker threads (episode loads, live inference) hold the GIL in turns with the event
        # loop; a shorter switch interval lets the loop answer other clients sooner.
        sys.setswitchinterval(SWITCH_INTERVAL)
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
        self.lanes.close()

    # ------------------------------------------------------------------ HTTP: the page
    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlparse(request.path)
        if not self.options.token and not self._host_allowed(request.headers.get("Host")):
            return _response(403, b"forbidden: unknown Host (serve.allowed_hosts)\n", "text/plain")
        if url.path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and not self._origin_allowed(origin, request):
                return _response(403, b"forbidden: cross-origin WebSocket\n", "text/plain")
            if self.options.token and not _token_matches(url.query, self.options.token):
                return _response(403, b"forbidden: a valid token is required\n", "text/plain")
            return None
        name = "index.html" if url.path in ("/", "") else url.path.lstrip("/")
        path = (STATIC / name).resolve()
        if STATIC not in path.parents or not path.is_file():
            return _response(404, b"not found\n", "text/plain")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return _response(200, path.read_bytes(), kind)

    def _host_allowed(self, host: str | None) -> bool:
        """Without a token the Host must name this machine's loopback (or a listed name): a
        DNS-rebinding page reaches 127.0.0.1 under its own name, which is refused here."""
        if not host:
            return False
        try:
            name = urlparse(f"//{host}").hostname
        except ValueError:
            return False
        return name is not None and (
            name in LOCAL_HOSTS or name in self.options.allowed_hosts or name == self.options.host
        )

    def _origin_allowed(self, origin: str, request: Request) -> bool:
        """A browser's WebSocket must come from the page this server serves (same host and
        port) or from an origin listed in `allowed_origins`."""
        origin = origin.rstrip("/")
        if origin in self.options.allowed_origins:
            return True
        host = request.headers.get("Host")
        parsed = urlparse(origin)
        return bool(host) and parsed.scheme in ("http", "https") and parsed.netloc == host

    # ------------------------------------------------------------------ WebSocket
    async def handler(self, connection: ServerConnection) -> None:
        session = Session(connection)
        session.room.set()
        self.sessions.add(session)
        sender = asyncio.create_task(self._sender(session))
        player = asyncio.create_task(self._player(session))
        try:
            session.send(await self._connected())
            async for raw in connection:
                try:
                    command, message = parse(raw)
                    await self._dispatch(session, command, message)
                except ProtocolError as error:
                    session.error(str(error))
                await session.room.wait()  # a client that does not read is not read from
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(session)
            for task in (sender, player):
                task.cancel()
            await self._close_live(session)

    async def _close_live(self, session: Session) -> None:
        live, session.live = session.live, None
        if live is not None:
            await self.lanes.heavy(live.close)

    async def _connected(self) -> dict[str, Any]:
        names = await self._names()
        return {
            "type": "connected",
            "mode": "idle",
            "runs": self.catalog.runs(),
            "replay_available": self.catalog.available,
            "live_available": self.live_factory is not None,
            **names,
        }

    async def _names(self) -> dict[str, Any]:
        if self.live_factory is not None:
            return self.live_factory.names()
        if self._first_names is None:  # read once, off the loop; each episode names its own
            names = await self.lanes.light(self.catalog.first_names)
            self._first_names = names or {"meter_names": [], "action_names": []}
        return self._first_names

    async def _sender(self, session: Session) -> None:
        try:
            while True:
                await session.ready.wait()
                while session.outbox:
                    data, droppable = session.outbox.popleft()
                    session.sent(droppable)
                    if len(session.outbox) < OUTBOUND_LIMIT // 2:
                        session.drained.set()
                    await session.connection.send(data, text=True)
                session.ready.clear()
        except ConnectionClosed:
            pass
        finally:  # a closed connection has room: its handler must not wait for a reader
            session.closed = True
            session.outbox.clear()
            session.room.set()
            session.drained.set()

    async def _player(self, session: Session) -> None:
        """Advance the session's playback at step_delay / speed while it is playing.

        Steps are due on an absolute schedule (due += delay), so time spent sending does not
        accumulate as drift; a wake-up (play, speed change) restarts the schedule from now."""
        loop = asyncio.get_running_loop()
        due, batch = loop.time(), 0
        while True:
            if not session.playing:
                session.wake.clear()
                await session.wake.wait()
                due = loop.time()
                continue
            if session.mode == "replay":
                self._advance_replay(session)
            elif session.mode == "live":
                live = session.live
                messages = await self.lanes.heavy(live.step)
                if session.live is not live:  # switched while the step ran
                    continue
                for message in messages:
                    session.send(message, droppable=message["type"] == "state_update")
            delay = self.options.step_delay / session.speed
            if session.mode == "live":  # inference is real work: bounded per client
                delay = max(delay, 1.0 / MAX_LIVE_STEPS_PER_SEC)
            if delay > 0:
                due = max(due + delay, loop.time() - delay)  # never race more than a step
                wait = due - loop.time()
                if wait > MIN_WAIT:
                    try:
                        await asyncio.wait_for(session.wake.wait(), timeout=wait)
                        session.wake.clear()
                        due = loop.time()
                    except TimeoutError:
                        pass
                    continue
            # unlimited speed (or behind schedule): as fast as this client reads, in batches
            if len(session.outbox) >= OUTBOUND_LIMIT:
                session.drained.clear()
                await session.drained.wait()
                batch = 0
            elif batch >= BATCH_STEPS or session.mode == "live":
                await asyncio.sleep(0)
                batch = 0
            else:
                batch += 1

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
            await self._list(session, message)
        elif command == "load_replay":
            await self._load_replay(session, message)
        elif command == "load_checkpoint":
            await self._load_checkpoint(session, message)
        elif command == "branch_live":
            await self._branch_live(session, message)
        elif command == "episode_series":
            if session.mode != "replay" or session.frames is None:
                raise ProtocolError("episode_series needs a loaded replay")
            session.send(await self.lanes.opening(session.frames.series_bytes))
        elif command in CONTROL_ACTIONS:
            self._control(session, command, message)
        else:
            raise ProtocolError(f"Unknown message type: {command[:100]}")

    async def _list(self, session: Session, message: dict[str, Any]) -> None:
        if not self.catalog.available:
            raise ProtocolError("Replay not available (no database)")
        filters = list_filters(message.get("filters"))
        try:
            rows = await self.lanes.light(self.catalog.list, filters)
        except KeyError as error:
            raise ProtocolError(str(error.args[0])) from error
        keys = (*SEED_COLUMNS, "run")
        session.send(
            {"type": "recordings_list", "recordings": [{k: r.get(k) for k in keys} for r in rows]}
        )

    async def _load_replay(self, session: Session, message: dict[str, Any]) -> None:
        if not self.catalog.available:
            raise ProtocolError("Replay not available (no database)")
        if "episode_id" not in message:
            raise ProtocolError("load_replay needs an 'episode_id'")
        episode_id = integer(message["episode_id"], "episode_id", 0)
        run = message.get("run")
        if run is not None and not isinstance(run, str):
            raise ProtocolError("Invalid run: expected a string")
        try:
            frames = await self.lanes.opening(self.catalog.frames, episode_id, run)
        except (LookupError, RuntimeError) as error:
            raise ProtocolError(str(error.args[0])) from error
        await self._close_live(session)
        session.mode, session.frames, session.cursor, session.playing = "replay", frames, 0, False
        session.send(
            {
                "type": "replay_loaded",
                "episode_id": episode_id,
                "run": frames.run,
                "metadata": frames.metadata,
                "source": frames.source,
                "observation_window": frames.observation_window,
                "avoid_threshold": frames.avoid_threshold,
                "total_steps": frames.steps,
                "meter_names": frames.meters,
                "action_names": frames.actions,
            }
        )
        session.send(frames.encoded(0))

    def _checkpoint_named(self, message: dict[str, Any]) -> Any:
        """The message's `checkpoint`, or the run's policy when it names none (an empty or
        wrong name is still refused, by the caller's type check or `LiveFactory.resolve`)."""
        checkpoint = message.get("checkpoint")
        return self.live_factory.default_name() if checkpoint is None else checkpoint

    async def _load_checkpoint(self, session: Session, message: dict[str, Any]) -> None:
        if self.live_factory is None:
            raise ProtocolError("Live mode not available (no checkpoint or run directory)")
        checkpoint = self._checkpoint_named(message)
        if not isinstance(checkpoint, str):
            raise ProtocolError(
                "Invalid checkpoint: expected 'latest', 'best', 'selected' or a name"
            )
        shown = checkpoint[:100]
        try:
            live = await self.lanes.opening(self.live_factory.open, checkpoint)
        except (FileNotFoundError, ValueError) as error:
            raise ProtocolError(f"Failed to load checkpoint {shown}: {error}") from error
        await self._close_live(session)
        session.live, session.mode, session.frames, session.playing = live, "live", None, True
        session.send(live.start_message())
        session.wake.set()

    async def _branch_live(self, session: Session, message: dict[str, Any]) -> None:
        """Continue a recorded episode live from one of its ticks: the world re-simulated to
        exactly that tick's recorded state, then the checkpoint's policy acting from there."""
        from townlet.recording.verify import world_at

        if self.live_factory is None:
            raise ProtocolError("Live mode not available (no checkpoint or run directory)")
        for key in ("episode_id", "step"):
            if key not in message:
                raise ProtocolError(f"branch_live needs '{key}'")
        episode_id = integer(message["episode_id"], "episode_id", 0)
        step = integer(message["step"], "step", 0)
        checkpoint = self._checkpoint_named(message)
        run = message.get("run")
        if not isinstance(checkpoint, str) or (run is not None and not isinstance(run, str)):
            raise ProtocolError("Invalid checkpoint or run: expected strings")
        try:
            frames = await self.lanes.opening(self.catalog.frames, episode_id, run)
            world = await self.lanes.opening(world_at, frames.episode, step)
            live = await self.lanes.opening(self.live_factory.open, checkpoint, world)
        except (LookupError, RuntimeError, FileNotFoundError, ValueError) as error:
            text = str(error.args[0]) if error.args else str(error)
            raise ProtocolError(f"Cannot branch from episode {episode_id}: {text}") from error
        live.step_index = step  # its updates count on from the recorded tick
        await self._close_live(session)
        session.live, session.mode, session.frames, session.playing = live, "live", None, True
        session.send(
            {**live.start_message(), "branched_from": {"episode_id": episode_id, "step": step}}
        )
        session.wake.set()

    def _control(self, session: Session, action: str, message: dict[str, Any]) -> None:
        if session.mode == "idle":
            raise ProtocolError(f"Nothing to {action}: load a replay or a checkpoint first")
        if action == "set_speed":
            if "speed" not in message:
                raise ProtocolError("set_speed needs a 'speed'")
            session.speed = speed(message["speed"])
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
            step = integer(message["seek_step"], "seek_step")
            last = session.frames.steps - 1
            if not 0 <= step <= last:
                raise ProtocolError(f"Invalid seek step: {step} (0-{last})")
            session.cursor = step
            session.send(session.frames.encoded(step))


def _token_matches(query: str, token: str) -> bool:
    """The `token` query parameter equals `token`, compared as bytes in constant time (a
    non-ASCII value is simply a wrong one, never an error)."""
    given = parse_qs(query).get("token", [""])[0]
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


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

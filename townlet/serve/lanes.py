"""Two lanes of worker threads for the server: heavy jobs (opening an episode, loading a
checkpoint, rebuilding a world, live inference, series) and light ones (listing recordings,
reading names) never share a queue, so a list waits behind no rebuild. Heavy work is bounded
as a whole: past `heavy_limit` opening jobs queued or running, another is refused as busy
instead of queued for minutes."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from townlet.serve.protocol import ProtocolError

T = TypeVar("T")

HEAVY_WORKERS = 2
LIGHT_WORKERS = 2
HEAVY_LIMIT = 512
"""Openings queued or running at once, over all clients (each has at most one in flight): a
hundred viewers opening recordings together are served; thousands of connections are not
queued without end."""


class ServerBusy(ProtocolError):
    """Too much heavy work is already queued: the client may try again later."""


class Lanes:
    def __init__(
        self,
        heavy_workers: int = HEAVY_WORKERS,
        light_workers: int = LIGHT_WORKERS,
        heavy_limit: int = HEAVY_LIMIT,
    ) -> None:
        self._heavy = ThreadPoolExecutor(heavy_workers, thread_name_prefix="townlet-heavy")
        self._light = ThreadPoolExecutor(light_workers, thread_name_prefix="townlet-light")
        self.heavy_limit, self.openings = heavy_limit, 0

    async def heavy(self, fn: Callable[..., T], *args: Any) -> T:
        """A heavy job that keeps an existing session going (a live step, a close): never
        refused, so playback does not stop when others queue openings."""
        return await _run(self._heavy, fn, *args)

    async def opening(self, fn: Callable[..., T], *args: Any) -> T:
        """A heavy job a request starts (open an episode, load a checkpoint, branch): refused
        with ServerBusy while `heavy_limit` such jobs are queued or running."""
        if self.openings >= self.heavy_limit:
            raise ServerBusy(
                f"Server busy: {self.openings} episode or checkpoint loads queued; try again"
            )
        self.openings += 1
        try:
            return await self.heavy(fn, *args)
        finally:
            self.openings -= 1

    async def light(self, fn: Callable[..., T], *args: Any) -> T:
        return await _run(self._light, fn, *args)

    def close(self) -> None:
        self._heavy.shutdown(wait=False, cancel_futures=True)
        self._light.shutdown(wait=False, cancel_futures=True)


async def _run(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))

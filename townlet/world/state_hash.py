"""A 64-bit digest of one env's whole state, and a byte per part, so two runs (or a recording
and its re-simulation) can be compared tick by tick and a difference named.

Every field of `WorldState` belongs to exactly one part (a test keeps it so); the digest is
BLAKE2b over the env's rows, part by part, in a fixed order. The episode's draws come from its
own key (`rng_key`, in the `episode` part), never from the shared generator, so the env's
state is all that decides its future.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields

from townlet.world.state import WorldState

PARTS: dict[str, tuple[str, ...]] = {
    "positions": ("pos",),
    "meters": ("meters", "alive"),
    "queue": ("queued", "ticket"),
    "interactions": ("using", "progress", "stock", "outage_left"),
    "relationships": ("rivalry", "familiarity", "last_chat"),
    "shift": ("arrived", "commute_potential"),
    "episode": ("tick", "episode", "start_offset", "episode_return", "rng_key"),
}


def part_digests(state: WorldState, env: int = 0) -> list[int]:
    """One 64-bit digest per part (in PARTS order) of env `env`'s rows."""
    digests = []
    for names in PARTS.values():
        h = hashlib.blake2b(digest_size=8)
        for name in names:
            row = getattr(state, name)[env]
            if row.device.type != "cpu" or not row.is_contiguous():
                row = row.cpu().contiguous()
            h.update(row.numpy())  # hashed through the buffer protocol: no copy
        digests.append(int.from_bytes(h.digest(), "little"))
    return digests


def state_digest(state: WorldState, env: int = 0) -> tuple[int, list[int]]:
    """(the whole state's 64-bit digest as a signed int64, one byte per part): what a recording
    stores per tick, in the form it stores it."""
    parts = part_digests(state, env)
    whole = hashlib.blake2b(b"".join(p.to_bytes(8, "little") for p in parts), digest_size=8)
    return int.from_bytes(whole.digest(), "little", signed=True), [p & 0xFF for p in parts]


def unassigned_fields() -> set[str]:
    """State fields no part covers (must stay empty)."""
    covered = {name for names in PARTS.values() for name in names}
    return {f.name for f in fields(WorldState)} - covered

"""Several worlds' envs stepped as one batch, each env going on exactly as in its own world.

A world's envs never read each other (every random draw comes from the env's own episode key,
see `draws.py`), so the envs of worlds built with different seeds can share one batch. The
evaluation plays its four seed groups this way: one pass of 240 steps over 8 envs instead of
four passes over 2 (see `townlet.policy.evaluate`), and per-step overheads are paid once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from townlet.world.fast_path import FastPath
from townlet.world.world import World


def side_by_side(worlds: Sequence[World], make: Callable[[int], World]) -> World:
    """A world of all `worlds`' envs, in order, in their current states. `make(num_envs)`
    builds the batch (the same configs and options as the parts); it continues without any
    reset draw of its own, so its envs must not be reset (no `auto_reset`)."""
    if not worlds:
        raise ValueError("side_by_side needs at least one world")
    joined = make(sum(w.num_envs for w in worlds))
    if joined.auto_reset:
        raise ValueError("side_by_side worlds cannot reset: their resets would draw elsewhere")
    parts = [w.snapshot() for w in worlds]
    snapshot = joined.snapshot()
    if any(not torch.equal(p["decay"], snapshot["decay"]) for p in parts):
        raise ValueError("side_by_side worlds must share their meters' decay (curriculum stage)")
    snapshot["state"] = {
        name: torch.cat([p["state"][name] for p in parts]) for name in snapshot["state"]
    }
    snapshot["fresh_alive"] = torch.cat([p["fresh_alive"] for p in parts])
    snapshot["flags"] = FastPath.either([w.fast for w in worlds]).as_dict()
    joined.restore(snapshot)
    return joined

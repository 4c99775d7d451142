"""`FastPath`: facts about the batched state kept in Python, so the step can skip idle phases
(nobody interacting, nobody fainted, no rivalry, no shift running) without reading tensors.

They are a cache of the state, and a stale cache is a silent bug; `recompute` derives every
fact from the state itself, and `problems` compares the cache with it. A world built with
`check_fast_path=True` (or TOWNLET_CHECK_FAST_PATH=1) checks after every step; tests do."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from townlet.world.state import WorldState


@dataclass
class FastPath:
    engaged: bool = False  # someone is using or queued for an affordance
    rivalry_active: bool = False  # rivalry has been raised since the reset (it may decay to 0)
    social_active: bool = False  # familiarity has been raised since the reset (it decays too)
    all_alive: bool = True  # nobody fainted or sits out
    oldest_tick: int = 0  # the largest episode tick over envs
    arrivals_pending_reset: bool = False  # a shift ran; arrivals must clear before the next

    @classmethod
    def recompute(cls, state: WorldState) -> FastPath:
        """The facts as the state shows them (rivalry counts as active while any is > 0)."""
        return cls(
            engaged=bool((state.using >= 0).any() or (state.queued >= 0).any()),
            rivalry_active=bool((state.rivalry > 0).any()),
            social_active=bool((state.familiarity > 0).any()),
            all_alive=bool(state.alive.all()),
            oldest_tick=int(state.tick.max()),
            arrivals_pending_reset=bool((state.arrived != 0).any()),
        )

    @classmethod
    def either(cls, parts: list[FastPath]) -> FastPath:
        """The facts of several batches' envs taken together (`side_by_side`): each one-way
        fact raised if any part raised it, all alive only if all are."""
        return cls(
            engaged=any(f.engaged for f in parts),
            rivalry_active=any(f.rivalry_active for f in parts),
            social_active=any(f.social_active for f in parts),
            all_alive=all(f.all_alive for f in parts),
            oldest_tick=max(f.oldest_tick for f in parts),
            arrivals_pending_reset=any(f.arrivals_pending_reset for f in parts),
        )

    def problems(self, state: WorldState) -> list[str]:
        """Where the cache disagrees with the state. Exact facts must match; the two
        one-way facts (rivalry raised, arrivals pending) may only be true with nothing to show."""
        truth = FastPath.recompute(state)
        found = [
            f"{name}: cached {getattr(self, name)}, state says {getattr(truth, name)}"
            for name in ("engaged", "all_alive", "oldest_tick")
            if getattr(self, name) != getattr(truth, name)
        ]
        for name in ("rivalry_active", "social_active", "arrivals_pending_reset"):
            if getattr(truth, name) and not getattr(self, name):
                found.append(f"{name}: cached False, but the state has some")
        return found

    def as_dict(self) -> dict[str, bool | int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, bool | int]) -> FastPath:
        """From `as_dict` (older checkpoints spelled the names with a leading underscore)."""
        return cls(**{name.lstrip("_"): value for name, value in values.items()})


class FastPathError(AssertionError):
    """The step's cached facts disagree with the state (found by `check_fast_path`)."""

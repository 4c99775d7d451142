"""Counter-based random numbers: the same (episode key, tick, agent) always gives the same draw.

The world used to break queue ties with `torch.rand` on one generator shared by every env of a
batch, so env 0's draws depended on how many envs there were and on what the others did: no
env could be re-simulated alone. A draw here is a pure function of the env's episode key
(`WorldState.rng_key`, drawn when the episode starts), its tick and the agent, hashed with
SplitMix64's finaliser in int64 arithmetic (wrapping multiplication, the same on CPU and GPU).
"""

from __future__ import annotations

import torch

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
_MIX_1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_MIX_2 = -7723592293110705685  # 0x94D049BB133111EB
_TICK = 0x632BE59BD9B4E019
_LOW_53 = (1 << 53) - 1


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic for signed integers)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser: every input bit affects every output bit."""
    x = (x ^ _shift_right(x, 30)) * _MIX_1
    x = (x ^ _shift_right(x, 27)) * _MIX_2
    return x ^ _shift_right(x, 31)


def uniform(key: torch.Tensor, tick: torch.Tensor, agents: int) -> torch.Tensor:
    """(E, agents) float64 in [0, 1): one draw per agent for this tick of each env's episode."""
    agent = torch.arange(1, agents + 1, device=key.device, dtype=torch.int64) * _GOLDEN
    x = mix(key.unsqueeze(1) ^ (tick.unsqueeze(1) * _TICK) ^ agent)
    return _shift_right(x, 11).to(torch.float64) * (1.0 / (1 << 53))

"""Social life, batched over envs and agents: chats, familiarity, late help, shift takeovers.

Chat is INTERACT where there is nothing to use: an agent that INTERACTs off any usable
affordance, not busy, next to (or on the tile of) another standing agent chats with the one it
knows best among those it has not chatted with for `chat_cooldown_ticks`. We chose INTERACT over
a new CHAT action because the action space, the network's output and every recording's action
columns stay as they are, and "interact with what is in front of you" is what INTERACT already
means; the mask allows it only where a chat can happen. A chat's quality is base + w_f x
familiarity - w_r x rivalry + w_n x the pair's mean social need (1 - social meter), clipped to
[0, 1]: strangers who both need company get on, rivals do not, and the sated are less keen. At
or above the threshold it succeeds (both gain social meter and familiarity in proportion to it);
below, it fails (the pair's rivalry rises). Familiarity also grows between agents who finish the
same meal on the same tick and between a late worker and the coworker who covers, and decays
slowly. The cooldown makes a chat an event rather than a state: without it PPO learned to stand
beside a neighbour chatting every tick instead of going to work.

Late help and takeovers happen in employment (`employment.work`) from the coworker table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.config.schema import SocialConfig
from townlet.world.layout import Layout
from townlet.world.lookup import entries
from townlet.world.state import WorldState
from townlet.world.windows import pair_offsets


@dataclass
class ChatRows:
    """What a chat reads and writes, for the envs where someone wants one (`ChatRows.of`): at
    1,024 envs of the town under random play 7% of envs have an agent that wants a chat at a
    tick, so chats run on their rows only (measured 2026-12-07)."""

    pos: torch.Tensor
    alive: torch.Tensor
    tick: torch.Tensor
    familiarity: torch.Tensor
    rivalry: torch.Tensor
    last_chat: torch.Tensor

    @classmethod
    def of(cls, state: WorldState, envs: torch.Tensor | None) -> ChatRows:
        """Rows `envs` of `state` (all of it, uncopied, for None)."""
        names = ("pos", "alive", "tick", "familiarity", "rivalry", "last_chat")
        if envs is None:
            return cls(*(getattr(state, name) for name in names))
        return cls(*(getattr(state, name).index_select(0, envs) for name in names))

    def write_back(self, state: WorldState, envs: torch.Tensor | None) -> None:
        """Put the relations a chat changed back into `state` (new tensors, as every step)."""
        for name in ("familiarity", "rivalry", "last_chat"):
            rows = getattr(self, name)
            whole = rows if envs is None else getattr(state, name).index_copy(0, envs, rows)
            setattr(state, name, whole)


Standing = WorldState | ChatRows  # whose positions, life and chats the pair tests read


@dataclass
class ChatOutcome:
    event: torch.Tensor  # (E, A) int64 ChatEvent of the chat this agent started
    quality: torch.Tensor  # (E, A) float32 its quality (0 where none)
    partner: torch.Tensor  # (E, A) int64 whom it was with (-1 where none)
    social_gain: torch.Tensor  # (E, A) float32 social meter gained (as starter or partner)


def _pairs(
    state: Standing,
    layout: Layout,
    table: torch.Tensor,
    all_alive: bool,
    offsets: torch.Tensor | None,
) -> torch.Tensor:
    """(E, A, A) bool: the pair's tile offset is in `table` (symmetric), both standing, i != j;
    `offsets` are this state's `pair_offsets` when the caller has them already."""
    if offsets is None:
        offsets = pair_offsets(state, table.shape[0] // 2)
    pairs = entries(table, offsets) & ~layout.self_pair
    if not all_alive:
        pairs &= state.alive.unsqueeze(1) & state.alive.unsqueeze(2)
    return pairs


def neighbours(
    state: Standing,
    layout: Layout,
    all_alive: bool = False,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """(E, A, A) bool: j stands on i's tile or next to it (4-neighbourhood), both standing."""
    return _pairs(state, layout, layout.near_by_offset, all_alive, offsets)


def in_view(
    state: Standing,
    layout: Layout,
    all_alive: bool = False,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """(E, A, A) bool: j is inside i's observation window, both standing."""
    return _pairs(state, layout, layout.in_view_by_offset, all_alive, offsets)


def chat_partners(
    state: Standing,
    layout: Layout,
    config: SocialConfig,
    all_alive: bool = False,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """(E, A, A) bool: j is next to i and the pair has not chatted for the cooldown."""
    near = neighbours(state, layout, all_alive, offsets)
    latest = state.tick.view(-1, 1, 1) - config.chat_cooldown_ticks  # the last chat allowed
    return near & (state.last_chat <= latest)


def chats(
    state: WorldState,
    layout: Layout,
    config: SocialConfig,
    wants: torch.Tensor,
    need: torch.Tensor,
    offsets: torch.Tensor,
    all_alive: bool,
) -> ChatOutcome:
    """This tick's chats (see `chat`), run on the rows of the envs where someone wants one;
    `offsets` are the state's `pair_offsets`."""
    e = wants.shape[0]
    envs = wants.any(1).nonzero().squeeze(1)
    if envs.numel() == e:
        envs = None  # every env: no rows to gather and spread
    rows = ChatRows.of(state, envs)
    pick = (lambda t: t) if envs is None else (lambda t: t.index_select(0, envs))
    near = chat_partners(rows, layout, config, all_alive, pick(offsets))
    talk = chat(rows, config, pick(wants), near, pick(need))
    rows.write_back(state, envs)
    if envs is None:
        return talk
    return ChatOutcome(
        torch.zeros_like(wants, dtype=torch.int64).index_copy_(0, envs, talk.event),
        torch.zeros_like(need).index_copy_(0, envs, talk.quality),
        torch.full_like(wants, -1, dtype=torch.int64).index_copy_(0, envs, talk.partner),
        torch.zeros_like(need).index_copy_(0, envs, talk.social_gain),
    )


def chat(
    state: ChatRows,
    config: SocialConfig,
    wants: torch.Tensor,
    near: torch.Tensor,
    need: torch.Tensor,
) -> ChatOutcome:
    """Resolve this tick's chats in place (familiarity, rivalry); `wants` (E, A) are the agents
    that INTERACTed with nothing to use and nothing in progress, `near` (E, A, A) whom each
    could chat with (`chat_partners`), `need` (E, A) their social need in [0, 1]."""
    # the best-known neighbour (the first on ties); -1 where nobody is near
    familiarity, partner = torch.where(near, state.familiarity, -1.0).max(-1)
    attempt = wants & (familiarity >= 0)
    rivalry = state.rivalry.gather(2, partner.unsqueeze(-1)).squeeze(-1)
    quality = (
        config.chat_base
        + config.chat_familiarity_weight * familiarity
        - config.chat_rivalry_weight * rivalry
        + (0.5 * config.chat_need_weight) * (need + need.gather(1, partner))
    ).clamp_(0.0, 1.0) * attempt
    success = attempt & (quality >= config.chat_success_threshold)
    failure = attempt ^ success
    event = success.long() + 2 * failure.long()  # ChatEvent
    e, a = attempt.shape
    gain = quality * success
    # Each starter's pair as flat (E, A, A) cells, starter -> partner and back. Agents that did
    # not chat point at their own diagonal, which nothing reads, and put 0 or its own value
    # there: writing a few cells instead of building (E, A, A) masks (measured 2026-12-07).
    agents = torch.arange(a, device=attempt.device)
    env_cell = torch.arange(e, device=attempt.device).unsqueeze(1) * (a * a)
    target = torch.where(attempt, partner, agents)
    one_way = (env_cell + agents * a + target).view(-1)
    other_way = (env_cell + target * a + agents).view(-1)
    last_chat = state.last_chat.clone()
    unchanged = last_chat.diagonal(dim1=1, dim2=2)
    stamp = torch.where(attempt, state.tick.unsqueeze(1), unchanged).view(-1)
    last_chat.view(-1)[one_way] = stamp
    last_chat.view(-1)[other_way] = stamp
    state.last_chat = last_chat
    if bool(success.any()):
        closeness = _both_ways(_pair_cells(config.chat_familiarity_gain * gain, one_way))
        state.familiarity = (state.familiarity + closeness).clamp_(max=1.0)
    if bool(failure.any()):
        friction = _both_ways(_pair_cells(config.chat_failure_rivalry * failure, one_way))
        state.rivalry = (state.rivalry + friction).clamp_(max=1.0)
    gain = config.chat_social_gain * gain
    # the starter's gain and, summed over who chose it, the partner's
    social_gain = gain + _pair_cells(gain, one_way).sum(1)
    return ChatOutcome(event, quality, torch.where(attempt, partner, -1), social_gain)


def share_meals(
    state: WorldState, config: SocialConfig, completed: torch.Tensor, meal: torch.Tensor
) -> None:
    """Agents of an env finishing the same meal type on the same tick grow familiar."""
    is_meal = (completed >= 0) & torch.take(meal, completed.clamp(min=0))
    same = (completed.unsqueeze(2) == completed.unsqueeze(1)) & is_meal.unsqueeze(2)
    same &= is_meal.unsqueeze(1)
    same.diagonal(dim1=1, dim2=2).fill_(False)
    if bool(same.any()):
        state.familiarity = (state.familiarity + config.meal_familiarity_gain * same).clamp_(
            max=1.0
        )


def decay_familiarity(state: WorldState, config: SocialConfig) -> None:
    state.familiarity.mul_(1.0 - config.familiarity_decay)


def familiarity_in_view(
    state: WorldState,
    layout: Layout,
    all_alive: bool = False,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """(E, A): the strongest familiarity an agent has with anyone in its window (0 if none)."""
    seen = in_view(state, layout, all_alive, offsets)
    return torch.where(seen, state.familiarity, 0.0).amax(-1)


def _pair_cells(values: torch.Tensor, one_way: torch.Tensor) -> torch.Tensor:
    """(E, A, A) float32: each starter's value (E, A), >= 0, at its pair's cell, 0 elsewhere."""
    e, a = values.shape
    cells = torch.zeros(e * a * a, dtype=torch.float32, device=values.device)
    cells[one_way] = values.reshape(-1).float()
    return cells.view(e, a, a)


def _both_ways(delta: torch.Tensor) -> torch.Tensor:
    """A pairwise change applied to both (i, j) and (j, i)."""
    return delta + delta.transpose(1, 2)

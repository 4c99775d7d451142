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
from townlet.world.state import WorldState


@dataclass
class ChatOutcome:
    event: torch.Tensor  # (E, A) int64 ChatEvent of the chat this agent started
    quality: torch.Tensor  # (E, A) float32 its quality (0 where none)
    partner: torch.Tensor  # (E, A) int64 whom it was with (-1 where none)
    social_gain: torch.Tensor  # (E, A) float32 social meter gained (as starter or partner)


def _pairs(state: WorldState, layout: Layout, table: torch.Tensor, all_alive: bool) -> torch.Tensor:
    """(E, A, A) bool: the pair's tile offset is in `table`, both standing, i != j."""
    offset = state.pos.unsqueeze(2) - state.pos.unsqueeze(1) + (table.shape[0] // 2)
    pairs = torch.take(table, offset) & ~layout.self_pair
    if not all_alive:
        pairs &= state.alive.unsqueeze(1) & state.alive.unsqueeze(2)
    return pairs


def neighbours(state: WorldState, layout: Layout, all_alive: bool = False) -> torch.Tensor:
    """(E, A, A) bool: j stands on i's tile or next to it (4-neighbourhood), both standing."""
    return _pairs(state, layout, layout.near_by_offset, all_alive)


def in_view(state: WorldState, layout: Layout, all_alive: bool = False) -> torch.Tensor:
    """(E, A, A) bool: j is inside i's observation window, both standing."""
    return _pairs(state, layout, layout.in_view_by_offset, all_alive)


def chat_partners(
    state: WorldState, layout: Layout, config: SocialConfig, all_alive: bool = False
) -> torch.Tensor:
    """(E, A, A) bool: j is next to i and the pair has not chatted for the cooldown."""
    near = neighbours(state, layout, all_alive)
    since = state.tick.view(-1, 1, 1) - state.last_chat
    return near & (since >= config.chat_cooldown_ticks)


def chat(
    state: WorldState,
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
    agents = torch.arange(near.shape[-1], device=near.device)
    pair = (agents == partner.unsqueeze(-1)) & attempt.unsqueeze(-1)  # (E, starter, partner)
    gain = quality * success
    talked = pair | pair.transpose(1, 2)
    state.last_chat = torch.where(talked, state.tick.view(-1, 1, 1), state.last_chat)
    if bool(success.any()):
        closeness = _both_ways(pair * (config.chat_familiarity_gain * gain).unsqueeze(-1))
        state.familiarity = (state.familiarity + closeness).clamp_(max=1.0)
    if bool(failure.any()):
        friction = _both_ways(pair * (config.chat_failure_rivalry * failure).unsqueeze(-1))
        state.rivalry = (state.rivalry + friction).clamp_(max=1.0)
    gain = config.chat_social_gain * gain
    social_gain = gain + (pair * gain.unsqueeze(-1)).sum(1)  # the starter's and the partner's
    return ChatOutcome(event, quality, torch.where(attempt, partner, -1), social_gain)


def share_meals(
    state: WorldState, config: SocialConfig, completed: torch.Tensor, meal: torch.Tensor
) -> None:
    """Agents of an env finishing the same meal type on the same tick grow familiar."""
    is_meal = (completed >= 0) & meal[completed.clamp(min=0)]
    same = (completed.unsqueeze(2) == completed.unsqueeze(1)) & is_meal.unsqueeze(2)
    same &= is_meal.unsqueeze(1)
    same.diagonal(dim1=1, dim2=2).fill_(False)
    if bool(same.any()):
        state.familiarity = (state.familiarity + config.meal_familiarity_gain * same).clamp_(
            max=1.0
        )


def decay_familiarity(state: WorldState, config: SocialConfig) -> None:
    state.familiarity.mul_(1.0 - config.familiarity_decay)


def familiarity_in_view(state: WorldState, layout: Layout, all_alive: bool = False) -> torch.Tensor:
    """(E, A): the strongest familiarity an agent has with anyone in its window (0 if none)."""
    seen = in_view(state, layout, all_alive)
    return torch.where(seen, state.familiarity, 0.0).amax(-1)


def _both_ways(delta: torch.Tensor) -> torch.Tensor:
    """A pairwise change applied to both (i, j) and (j, i)."""
    return delta + delta.transpose(1, 2)

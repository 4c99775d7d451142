"""One env's tick as the recorder and the live server see it: `frame_of`.

Training records env 0 of its batch and a live session its only env; both build the same
columns from the world state before the step and the policy's output for it, so a recording
and a live stream of the same policy can never disagree on a column."""

from __future__ import annotations

import torch

from townlet.world import StepResult, World
from townlet.world.events import RECORDED_EVENTS
from townlet.world.state_hash import state_digest


def frame_of(
    world: World,
    features: torch.Tensor,
    actions: torch.Tensor,
    logits: torch.Tensor | None,
    values: torch.Tensor | None,
    env: int = 0,
) -> dict[str, torch.Tensor]:
    """Columns of `env` before this tick's step, with its state's digest (`state_hash`, as
    int64) and a byte per part (`state_parts`): what `townlet recordings verify` compares.
    `features` (A, F), `actions` (A,), `logits` (A, K) and `values` (A,) are that env's rows;
    a behaviour without logits or values (a script) leaves those columns out rather than
    writing made-up ones."""
    state = world.state
    columns = {
        "positions": world.layout.xy_of(state.pos[env]),
        "meters": state.meters[env],
        "actions": actions,
        "interaction_progress": features[:, world.feature_index["interaction_progress"]],
        "time_of_day": world.time_of_day()[env],
        "queued": state.queued[env],
        "using": state.using[env],
        "outages": world.outages_now()[env],
        "rivalry": state.rivalry[env],
        "familiarity": state.familiarity[env],
    }
    if world.calendar.observed:  # a multi-day town: which day of the week the tick is
        columns["weekday"] = world.weekday()[env]
    digest, parts = state_digest(state, env)
    columns["state_hash"] = torch.tensor(digest)
    columns["state_parts"] = torch.tensor(parts, dtype=torch.uint8)
    if logits is not None:
        columns["action_probs"] = torch.softmax(logits, -1)
    if values is not None:
        columns["values"] = values
    return {name: column.cpu() for name, column in columns.items()}  # no copy on a CPU world


def outcome_of(result: StepResult, env: int = 0) -> dict[str, torch.Tensor]:
    """The step's reward, done and event columns of `env`, added to its frame after the step:
    every recorded event (what each agent completed, its shift event, faint, chat, late help
    received, shifts taken over, rent), so a replay can show why a meter moved."""
    columns = {
        "rewards": result.reward[env],
        "dones": result.terminated[env] | result.truncated[env],
    }
    for event in RECORDED_EVENTS:  # declared once, in townlet.world.events
        value = getattr(result.events, event.name)
        if value is not None:
            columns[event.name] = value[env]
    return {name: column.cpu() for name, column in columns.items()}

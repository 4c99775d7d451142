"""One env's tick as the recorder and the live server see it: `frame_of`.

Training records env 0 of its batch and a live session its only env; both build the same
columns from the world state before the step and the policy's output for it, so a recording
and a live stream of the same policy can never disagree on a column."""

from __future__ import annotations

import torch

from townlet.world import StepResult, World


def frame_of(
    world: World,
    features: torch.Tensor,
    actions: torch.Tensor,
    logits: torch.Tensor,
    values: torch.Tensor,
    env: int = 0,
) -> dict[str, torch.Tensor]:
    """Columns of `env` before this tick's step. `features` (A, F), `actions` (A,),
    `logits` (A, K) and `values` (A,) are that env's agents' rows."""
    state = world.state
    columns = {
        "positions": world.layout.xy_of(state.pos[env]),
        "meters": state.meters[env],
        "actions": actions,
        "interaction_progress": features[:, world.feature_index["interaction_progress"]],
        "time_of_day": world.time_of_day()[env],
        "queued": state.queued[env],
        "using": state.using[env],
        "action_probs": torch.softmax(logits, -1),
        "values": values,
    }
    return {name: column.cpu() for name, column in columns.items()}  # no copy on a CPU world


def outcome_of(result: StepResult, env: int = 0) -> dict[str, torch.Tensor]:
    """The step's reward and done columns of `env`, added to its frame after the step."""
    done = result.terminated[env] | result.truncated[env]
    return {"rewards": result.reward[env].cpu(), "dones": done.cpu()}

"""`Tunables`: the numbers a running world may change (the curriculum scales meter decay), kept
apart from the compiled `Layout`, which is static: nothing mutates a layout in place."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.config.schema import WorldConfig
from townlet.world.layout import meter_vector


@dataclass
class Tunables:
    meter_names: tuple[str, ...]
    base_decay: torch.Tensor  # (M,) per-tick decay of each meter, as configured
    decay: torch.Tensor  # (M,) the decay in force: base_decay times the stage's scale
    need_weights: torch.Tensor  # (M,) reward weight of each meter's change
    decay_scale: float = 1.0  # the curriculum stage's factor on base_decay

    @classmethod
    def compile(
        cls, world: WorldConfig, meter_names: tuple[str, ...], device: torch.device
    ) -> Tunables:
        index = {name: i for i, name in enumerate(meter_names)}
        decay = torch.tensor([world.meters[m].decay for m in meter_names], dtype=torch.float32)
        weights = meter_vector(world.reward.need_weights, index, "world.reward.need_weights")
        return cls(
            meter_names,
            decay.to(device),
            decay.clone().to(device),
            torch.tensor(weights, dtype=torch.float32, device=device),
        )

    def scale_decay(self, factor: float) -> None:
        """Every meter's decay becomes `factor` times its configured value."""
        self.decay, self.decay_scale = self.base_decay * factor, float(factor)

"""The shared actor-critic: embedded map codes and features -> action logits and a value.

The map arrives as small integer codes (see `townlet.world.constants`); the network learns an
embedding per code and reads the flattened window with a linear layer, which is matmul-bound
and fast on a CPU. Two methods, as in CleanRL: `get_value` and `get_action_and_value`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from townlet.world.constants import MAX_CODE

CODE_VOCAB = MAX_CODE + 1  # one embedding row per map code the world can draw


class _CodeLookup(torch.autograd.Function):
    """`weight[codes]` whose backward is one `index_add_`.

    The stock CPU embedding backward sorts the indices and runs about 5x slower here for the
    (minibatch x cells) indices PPO produces; the gradient is simply a per-code sum.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(codes)
        ctx.vocab = weight.shape[0]
        return nn.functional.embedding(codes, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (codes,) = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        weight_grad = torch.zeros(ctx.vocab, grad.shape[-1], dtype=grad.dtype, device=grad.device)
        weight_grad.index_add_(0, codes.reshape(-1), flat)
        return weight_grad, None


GRAD_CHUNK = 1024
"""Rows of the map gradient formed at a time in `_EmbeddedWindow`'s backward (1.3 MB fp32)."""


class _EmbeddedWindow(torch.autograd.Function):
    """`linear(weight[codes].flatten(1))`: the map layer read from the code embedding.

    Same arithmetic as the embedding followed by the linear layer, in the same order, so the
    results are identical bit for bit; only the backward differs in memory. The gradient
    reaching the embedding is (minibatch x 81 cells x embedding) wide: formed whole it is a
    10.6 MB matrix written and read again, which the cache cannot hold; formed `GRAD_CHUNK`
    rows at a time and summed into the embedding's gradient in the same row order, the
    update ran 8% faster (116-121 against 126-136 ms for four minibatches of 8,192 from a
    town rollout, one thread, measured 2026-12-07).
    """

    @staticmethod
    def forward(ctx, table, weight, bias, codes):
        flat = codes.reshape(codes.shape[0], -1).long()
        window = nn.functional.embedding(flat, table).flatten(1)
        ctx.save_for_backward(table, weight, flat, window)
        return torch.addmm(bias, window, weight.t())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        table, weight, flat, window = ctx.saved_tensors
        grad_weight = grad.t().mm(window)
        grad_bias = grad.sum(0)
        grad_table = torch.zeros_like(table)
        for start in range(0, grad.shape[0], GRAD_CHUNK):
            rows = grad[start : start + GRAD_CHUNK].mm(weight)
            grad_table.index_add_(
                0, flat[start : start + GRAD_CHUNK].reshape(-1), rows.view(-1, table.shape[1])
            )
        return grad_table, grad_weight, grad_bias, None


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 names it apart
        return torch.is_autocast_cpu_enabled()


def gumbel_max(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """A sample of each row's categorical from uniform noise of the same shape (Gumbel-max):
    the noise is drawn by the caller, from the generator the sample must depend on."""
    return (logits - torch.log(-torch.log(uniform.clamp_min(1e-20)))).argmax(-1)


class CodeEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(CODE_VOCAB, dim) * 0.5)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return _CodeLookup.apply(self.weight, codes.long())


def layer_init(layer: nn.Linear, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class ActorCritic(nn.Module):
    def __init__(
        self, window: int, num_features: int, num_actions: int, hidden: int = 64, embedding: int = 4
    ) -> None:
        super().__init__()
        self.shape = {
            "window": window,
            "num_features": num_features,
            "num_actions": num_actions,
            "hidden": hidden,
            "embedding": embedding,
        }
        self.embed = CodeEmbedding(embedding)
        self.map_fc = layer_init(nn.Linear(embedding * window * window, hidden))
        self.feature_fc = layer_init(nn.Linear(num_features, hidden))
        self.trunk = layer_init(nn.Linear(2 * hidden, hidden))
        self.actor = layer_init(nn.Linear(hidden, num_actions), std=0.01)
        self.critic = layer_init(nn.Linear(hidden, 1), std=1.0)

    def hidden(self, codes: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """codes (N, V, V) uint8, features (N, F) -> (N, hidden)."""
        window = torch.relu(self.read_map(codes))
        own = torch.relu(self.feature_fc(features))
        return torch.tanh(self.trunk(torch.cat((window, own), dim=1)))

    def read_map(self, codes: torch.Tensor) -> torch.Tensor:
        """The map layer's pre-activation: fused in fp32; the plain modules under autocast,
        which casts the linear layer's inputs itself."""
        if codes.is_cpu and not _cpu_autocast():
            return _EmbeddedWindow.apply(
                self.embed.weight, self.map_fc.weight, self.map_fc.bias, codes
            )
        return self.map_fc(self.embed(codes).flatten(1))

    def _masked_logits(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # fp32 from here on under bf16 autocast: masking, sampling and log-probabilities
        return self.actor(h).float().masked_fill(~mask, -1e9)

    def masked_logits(
        self, codes: torch.Tensor, features: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The masked logits alone, as `get_action_and_value` computes them: for readers that
        need no value, entropy or sample (the greedy action, a KL), which are about half of
        an acting pass over 512 rows (0.45 of 0.85 ms, measured 2026-12-07)."""
        return self._masked_logits(self.hidden(codes, features), mask)

    def get_value(self, codes: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.critic(self.hidden(codes, features)).float().squeeze(-1)

    def get_action_and_value(
        self,
        codes: torch.Tensor,
        features: torch.Tensor,
        mask: torch.Tensor,
        action: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ):
        """Sample (or score) an action under the action mask.

        Returns (action, log_prob, entropy, value, logits); the logits are already masked.
        """
        h = self.hidden(codes, features)
        logits = self._masked_logits(h, mask)
        dist = Categorical(logits=logits, validate_args=False)  # ours, masked: valid
        if action is None:
            if deterministic:
                action = logits.argmax(-1)
            else:
                # our own generator: reproducible without touching global RNG
                uniform = torch.rand(logits.shape, generator=generator, device=logits.device)
                action = gumbel_max(logits, uniform)
        value = self.critic(h).float().squeeze(-1)
        return action, dist.log_prob(action), dist.entropy(), value, logits

"""The arithmetic the network runs in: fp32, or bf16 autocast for its matmuls.

Only the matmul-heavy layers run in bf16 (autocast's own op list); the weights, the Adam state,
the losses and every output the algorithm reads (logits, values, log-probabilities) stay fp32,
so sampling, advantages and checkpoints are unchanged in kind. On a CPU with AVX-512 bf16 and
AMX the update's network part ran 1.5x faster than in fp32 and the default job 1.2x, but the
policy it learned was not as good on every seed (seed 1 of `town`: 3.185 against 3.210,
measured 2026-12-07; the training guide has the table); on a CPU with only AVX2 torch emulates
bf16 and the same update ran 7x slower (0.72 s fp32 against 5.1 s bf16 for 16 minibatches of
8,192, measured 2026-12-06). So fp32 stays the default and `native_bf16` says which case a
machine is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from townlet.config.choices import Precision


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 matmuls in hardware (else autocast only slows it down)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


@contextlib.contextmanager
def precision_scope(precision: Precision | str, device: torch.device) -> Iterator[None]:
    """Autocast to bf16 on `device` when `precision` is bf16; a no-op for fp32."""
    if Precision(precision) is Precision.fp32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield

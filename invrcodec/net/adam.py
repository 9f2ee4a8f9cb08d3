"""Adam for the training loop, without torch.optim's machinery.

``torch.optim.Optimizer`` imports ``torch._dynamo`` the first time a parameter group is added or a step is
taken (its ``_disable_dynamo`` wrappers and graph breaks): about a second on a two-core CPU, which a command
that never compiles need not pay (invr-enc --psnr 30 on a 15-frame chunk trains for 2-5 s). :class:`Adam` is
the same update as ``torch.optim.Adam(params, lr, fused=True)`` (Kingma and Ba, with bias correction; no
weight decay, no AMSGrad), through the same fused kernel, and holds its state the same way
(``state[param]`` with ``step``, ``exp_avg`` and ``exp_avg_sq``), so ``torch.amp.GradScaler`` steps it as
it steps torch's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["Adam"]


class Adam:
    """Adam over one group of parameters; set ``param_groups[0]["lr"]`` to change the rate."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.param_groups: list[dict[str, Any]] = [{"params": list(params), "lr": lr, "betas": betas,
                                                    "eps": eps}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            if p not in self.state:
                self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                 "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                 "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        states = [self.state[p] for p in params]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                           [s["exp_avg_sq"] for s in states], [], steps, lr=float(group["lr"]), beta1=beta1,
                           beta2=beta2, weight_decay=0.0, eps=group["eps"], amsgrad=False, maximize=False)

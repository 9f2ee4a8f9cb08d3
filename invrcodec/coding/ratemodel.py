"""A differentiable estimate of the bits DeepCABAC spends on a tensor, for rate-aware training (issue 11).

Each tensor is modelled as i.i.d. Laplacian values x = w / (kappa * step) quantised to integers, with the
Laplace scale fitted to the tensor itself (b = mean |x|, its maximum-likelihood estimate), and costs
``-log2 P(round(x))`` bits per value. ``step`` is the tensor's coded step size (``deepcabac.step_size`` of its
QP in ``weights.qp_plan``). ``kappa`` accounts for dependent (trellis) quantisation: on Laplacian data
nncodec's DQ at step s spends about the bits of plain scalar quantisation at step ~1.7 s and leaves an error of
~0.45 s rms, which is also the error of a scalar quantiser of step ~1.6 s (``tools/rate_aware.py check``
measures the ratio on trained networks against the real coded size).

Used with ``x`` continuous (training adds uniform noise of one quantiser step to the weights), the interval
probability ``F(x + 1/2) - F(x - 1/2)`` is the density of the noisy value, so its gradient is defined
everywhere (Balle et al. 2017; Cool-chic and C3 train their latents the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from invrcodec.coding import deepcabac
from invrcodec.types import CoderParams, Representation
from invrcodec.coding.weights import QP_ORIGIN, qp_plan

# Scalar step equivalent to nncodec's dependent quantisation at one step, in rate and in error (see above).
DQ_KAPPA = 1.6
_MIN_SCALE = 0.05  # a tensor of (nearly) all zeros: keep the model finite
_LN2 = math.log(2.0)


def laplace_bits(x: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Bits of each value of ``x`` (in quantiser steps) under a discretised Laplacian of scale ``scale``:
    ``-log2(F(|x| + 1/2) - F(|x| - 1/2))``, in closed form (stable for any |x|)."""
    a = x.abs()
    b = torch.as_tensor(scale, dtype=x.dtype, device=x.device).clamp_min(_MIN_SCALE)
    # |x| >= 1/2: P = 1/2 exp(-(|x| - 1/2) / b) (1 - exp(-1/b))
    tail = (a - 0.5) / b - torch.log(0.5 * (-torch.expm1(-1.0 / b)))
    # |x| < 1/2: P = 1 - exp(-1/(2b)) cosh(|x| / b)
    inner = torch.clamp(1.0 - torch.exp(-0.5 / b) * torch.cosh(torch.clamp(a, max=0.5) / b), min=1e-12)
    nats = torch.where(a >= 0.5, tail, -torch.log(inner))
    return nats / _LN2


def tensor_bits(w: torch.Tensor, step: float, kappa: float = DQ_KAPPA, dims: int = 0) -> torch.Tensor:
    """Estimated bits of the tensor ``w`` coded at quantiser step ``step``. With ``dims`` > 0 the first
    ``dims`` dimensions are batch dimensions (chunks trained together): one estimate per entry."""
    x = w.float() / (kappa * step)
    flat = x.reshape(*x.shape[:dims], -1) if dims else x.reshape(-1)
    scale = flat.detach().abs().mean(dim=-1, keepdim=True)
    return laplace_bits(flat, scale).sum(dim=-1)


def coded_steps(rep: Representation, qp: int, coder: CoderParams) -> dict[str, float]:
    """The quantiser step of every tensor at user QP ``qp`` (the encoder's QP plan)."""
    return {name: deepcabac.step_size(q, coder.qp_density) for name, q in qp_plan(qp, rep).tensor_qps(rep).items()}


@dataclass(frozen=True)
class RateTarget:
    """What rate-aware training aims at (:func:`invrcodec.net.fit.fit_chunks`): over the steps after ``start``
    (a fraction of them) every trained tensor carries uniform noise of ``kappa`` times its coded step, and each
    chunk's loss (mean squared error over its samples in [-1, 1]) adds ``lam / samples`` times its estimated
    bits (of its difference to the anchor, for a P-chunk)."""

    steps: dict[str, float]  # coded quantiser step by tensor name
    lam: float  # distortion (squared error summed over samples) per bit
    start: float = 0.7
    kappa: float = DQ_KAPPA
    noise: bool = True  # off: the rate term alone, on the clean weights


def rate_target(rep: Representation, qp: int, coder: CoderParams, c: float, span: float) -> RateTarget | None:
    """The target of user QP ``qp``: lambda = c * step(qp)^2 (x264 ties its lambda to the square of the
    quantiser step likewise; step of the activated layers' base QP), over the last ``span`` of the steps."""
    if c <= 0 or span <= 0:
        return None
    base = deepcabac.step_size(qp - QP_ORIGIN, coder.qp_density)
    return RateTarget(coded_steps(rep, qp, coder), c * base * base, start=1.0 - span)


def estimate_bits(state: dict[str, np.ndarray], steps: dict[str, float],
                  kappa: float = DQ_KAPPA) -> dict[str, float]:
    """Estimated bits per tensor of a network's weights (numpy in, floats out), for checks and tools."""
    with torch.no_grad():
        return {name: float(tensor_bits(torch.from_numpy(np.asarray(state[name], dtype=np.float32)), step, kappa))
                for name, step in steps.items()}

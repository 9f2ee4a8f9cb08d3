"""Quality metrics: PSNR on 8-bit RGB, and the two ways of averaging PSNRs over frames or chunks.

A PSNR over several frames or chunks is reported in one of two ways, and they differ (the first is never
above the second):

- :func:`pooled_psnr`: the PSNR of the pooled (mean) MSE, as if all the frames were one image. This is what a
  chunk's PSNR is (its frames pooled), what training reports while it runs, and the tools' ``psnr_chunk``.
- :func:`mean_of_psnrs`: the mean of the PSNR values in dB, the paper's average over frames. ``invr-enc``'s end
  summary and ``invr-probe`` print it over the chunks, weighted by their frames.

Importing this module does not import torch (invr-probe uses it); :func:`rgb_psnr` does when first called.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["mean_of_psnrs", "pooled_psnr", "psnr_from_mse", "rgb_psnr"]


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of an MSE measured on [0, 1] values."""
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def rgb_psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """PSNR (dB) between two uint8 RGB arrays of equal shape: the one quality metric of invrcodec."""
    import torch

    ta = torch.as_tensor(a).to(torch.float64)
    tb = torch.as_tensor(b).to(torch.float64)
    return psnr_from_mse(float(((ta - tb) ** 2).mean()) / (255.0**2))


def pooled_psnr(psnrs: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """The PSNR of the mean MSE of the parts (frames or chunks) whose PSNRs are given, each weighted by
    ``weights`` (e.g. its frame count; equal by default): the PSNR of all of them taken as one."""
    w = [1.0] * len(psnrs) if weights is None else weights
    return psnr_from_mse(sum(n * 10.0 ** (-p / 10.0) for n, p in zip(w, psnrs)) / sum(w))


def mean_of_psnrs(psnrs: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """The mean of the PSNR values in dB, each weighted by ``weights`` (equal by default): the paper's
    average over frames."""
    w = [1.0] * len(psnrs) if weights is None else weights
    return sum(n * p for n, p in zip(w, psnrs)) / sum(w)

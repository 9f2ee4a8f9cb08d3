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

__all__ = ["flat_psnr", "mean_of_psnrs", "pooled_psnr", "psnr_from_mse", "rgb_psnr"]


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of an MSE measured on [0, 1] values."""
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


PSNR_BLOCK = 1 << 24  # samples per block of rgb_psnr's sum (64 MB of int32 differences)


def rgb_psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """PSNR (dB) between two uint8 RGB arrays of equal shape: the one quality metric of invrcodec.

    The squared differences are summed exactly, as integers, a block of samples at a time: memory stays flat
    for a chunk of any size (float64 copies of a 90-frame 1080p chunk took 18 GB), and the result is the
    float64 mean's to the last bit (every partial sum is an integer below 2^53).
    """
    import torch

    ta, tb = torch.as_tensor(a), torch.as_tensor(b)
    if ta.shape != tb.shape:
        raise ValueError(f"rgb_psnr: shapes {tuple(ta.shape)} and {tuple(tb.shape)} differ")
    fa, fb = ta.reshape(-1), tb.reshape(-1)
    total = 0
    for i in range(0, fa.numel(), PSNR_BLOCK):
        d = fa[i:i + PSNR_BLOCK].to(torch.int32) - fb[i:i + PSNR_BLOCK].to(torch.int32)
        total += int((d * d).sum())
    return psnr_from_mse(total / max(fa.numel(), 1) / (255.0**2))


def flat_psnr(frames: np.ndarray) -> float:
    """PSNR (dB) of the flattest honest picture of uint8 RGB ``frames`` ``(T, H, W, 3)``: every frame replaced
    by its own mean colour, rounded to 8 bits as a decoder would output it. A network that does no better than
    this has lost the picture (the encoder's guard against collapsed chunks, invrcodec.fit).

    Summed exactly as integers, a frame at a time, as :func:`rgb_psnr`.
    """
    import numpy as np

    total, count = 0, 0
    for frame in frames:
        pixels = np.asarray(frame, dtype=np.int64).reshape(-1, 3)
        mean = np.floor(pixels.mean(axis=0) + 0.5).astype(np.int64)
        d = pixels - mean
        total += int((d * d).sum())
        count += d.size
    return psnr_from_mse(total / max(count, 1) / (255.0**2))


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

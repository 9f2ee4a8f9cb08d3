"""Bjontegaard deltas: BD-rate and BD-PSNR of one R-D curve against another, by PCHIP (the current VCEG/JVET
tools) or by one cubic fit (VCEG-M33), on the curves' Pareto points."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def pchip_integral(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> float:
    """Integral over [lo, hi] (inside [x0, xn]) of the monotone piecewise-cubic interpolant of (x, y)
    (SciPy's PCHIP: Fritsch-Carlson slopes with the three-point end rule, as MATLAB's pchip)."""
    return float(PchipInterpolator(np.asarray(x, float), np.asarray(y, float)).integrate(lo, hi))


def cubic_integral(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the least-squares cubic through (x, y) (Bjontegaard's VCEG-M33)."""
    fit = np.polynomial.Polynomial.fit(np.asarray(x, float), np.asarray(y, float), 3)
    prim = fit.integ()
    return float(prim(hi) - prim(lo))


def pareto(rates: Sequence[float], psnrs: Sequence[float]) -> tuple[list[float], list[float]]:
    """The points no other point beats on both axes, by increasing rate (rate control can repeat a rate)."""
    keep_r: list[float] = []
    keep_p: list[float] = []
    for r, p in sorted(zip(rates, psnrs), key=lambda rp: (rp[0], -rp[1])):
        if not keep_p or p > keep_p[-1] and r > keep_r[-1]:
            keep_r.append(r)
            keep_p.append(p)
    return keep_r, keep_p


def overlap(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """The common range of two sets of values, or None."""
    if not len(a) or not len(b):
        return None
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    return (float(lo), float(hi)) if hi > lo else None


def _bd(xa: Sequence[float], ya: Sequence[float], xt: Sequence[float], yt: Sequence[float],
        method: str) -> tuple[float, float, float] | None:
    """Mean of (yt - ya) over the overlap of the x ranges; None without an overlap or enough points."""
    need = 4 if method == "cubic" else 2
    if min(len(xa), len(xt)) < need:
        return None
    lo, hi = max(min(xa), min(xt)), min(max(xa), max(xt))
    if hi <= lo:
        return None
    integral = cubic_integral if method == "cubic" else pchip_integral
    ia = integral(xa, ya, lo, hi)
    it = integral(xt, yt, lo, hi)
    return (it - ia) / (hi - lo), lo, hi


def bd_rate(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float],
            test_psnr: Sequence[float], method: str = "pchip") -> float | None:
    """Bjontegaard delta rate (%) of the test curve against the anchor: the mean log-rate difference at
    equal PSNR over the overlapping PSNR range; negative means the test needs fewer bits.

    ``method`` is ``pchip`` (piecewise cubic, as the current VCEG/JVET tools) or ``cubic`` (one cubic fit,
    Bjontegaard's VCEG-M33; needs 4 points per curve). Curves are reduced to their Pareto points first.
    Returns None when the PSNR ranges do not overlap.
    """
    ar, ap = pareto(anchor_rate, anchor_psnr)
    tr, tp = pareto(test_rate, test_psnr)
    res = _bd(ap, np.log10(ar), tp, np.log10(tr), method)
    return None if res is None else float((10 ** res[0] - 1) * 100)


def bd_psnr(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float],
            test_psnr: Sequence[float], method: str = "pchip") -> float | None:
    """Bjontegaard delta PSNR (dB) of the test against the anchor at equal rate (overlapping log-rate
    range); positive means the test is better. None when the rate ranges do not overlap."""
    ar, ap = pareto(anchor_rate, anchor_psnr)
    tr, tp = pareto(test_rate, test_psnr)
    res = _bd(np.log10(ar), ap, np.log10(tr), tp, method)
    return None if res is None else float(res[0])

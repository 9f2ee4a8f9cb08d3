"""Bjontegaard deltas: BD-rate and BD-PSNR of one R-D curve against another, by PCHIP (the current VCEG/JVET
tools) or by one cubic fit (VCEG-M33), on the curves' Pareto points; over the range both curves reach or over
a fixed PSNR range; and one curve's PSNR at a given rate (how far behind it another curve's point is)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def pchip(x: Sequence[float], y: Sequence[float]) -> PchipInterpolator:
    """The monotone piecewise-cubic interpolant of (x, y), x increasing (SciPy's PCHIP: Fritsch-Carlson slopes
    with the three-point end rule, as MATLAB's pchip)."""
    return PchipInterpolator(np.asarray(x, float), np.asarray(y, float))


def pchip_integral(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> float:
    """Integral over [lo, hi] (inside [x0, xn]) of :func:`pchip` through (x, y)."""
    return float(pchip(x, y).integrate(lo, hi))


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


def spans(values: Sequence[float], lo: float, hi: float) -> bool:
    """Whether the values reach from lo (or below) to hi (or above)."""
    return bool(len(values)) and min(values) <= lo and max(values) >= hi


def _enough(xa: Sequence[float], xt: Sequence[float], method: str) -> bool:
    """Whether both curves have the points the method needs (a cubic fit needs 4, PCHIP 2)."""
    return min(len(xa), len(xt)) >= (4 if method == "cubic" else 2)


def _mean_difference(xa: Sequence[float], ya: Sequence[float], xt: Sequence[float], yt: Sequence[float],
                     lo: float, hi: float, method: str) -> float:
    """Mean of (yt - ya) over [lo, hi], each curve interpolated (or fitted) by the method."""
    integral = cubic_integral if method == "cubic" else pchip_integral
    return (integral(xt, yt, lo, hi) - integral(xa, ya, lo, hi)) / (hi - lo)


def _bd(xa: Sequence[float], ya: Sequence[float], xt: Sequence[float], yt: Sequence[float],
        method: str) -> tuple[float, float, float] | None:
    """Mean of (yt - ya) over the overlap of the x ranges; None without an overlap or enough points."""
    span = overlap(xa, xt) if _enough(xa, xt, method) else None
    if span is None:
        return None
    return _mean_difference(xa, ya, xt, yt, *span, method), *span


def _percent(mean_log10_ratio: float) -> float:
    """A mean log10 rate ratio as a rate change in percent."""
    return float((10**mean_log10_ratio - 1) * 100)


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
    return None if res is None else _percent(res[0])


def bd_psnr(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float],
            test_psnr: Sequence[float], method: str = "pchip") -> float | None:
    """Bjontegaard delta PSNR (dB) of the test against the anchor at equal rate (overlapping log-rate
    range); positive means the test is better. None when the rate ranges do not overlap."""
    ar, ap = pareto(anchor_rate, anchor_psnr)
    tr, tp = pareto(test_rate, test_psnr)
    res = _bd(np.log10(ar), ap, np.log10(tr), tp, method)
    return None if res is None else float(res[0])


def bd_rate_fixed(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float],
                  test_psnr: Sequence[float], lo: float = 30.0, hi: float = 42.0,
                  method: str = "pchip") -> float | None:
    """BD-rate (%) of the test against the anchor over a fixed PSNR range [lo, hi] instead of the range both
    curves reach: the common range hides a test curve that stops well below the anchor's top, a fixed range
    does not. Returns None when either curve's Pareto points do not span [lo, hi] ("does not reach")."""
    if hi <= lo:
        raise ValueError(f"empty PSNR range [{lo}, {hi}]")
    ar, ap = pareto(anchor_rate, anchor_psnr)
    tr, tp = pareto(test_rate, test_psnr)
    if not (_enough(ap, tp, method) and spans(ap, lo, hi) and spans(tp, lo, hi)):
        return None
    return _percent(_mean_difference(ap, np.log10(ar), tp, np.log10(tr), lo, hi, method))


def db_behind(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], rate: float) -> float | None:
    """The anchor's PSNR at ``rate``: PCHIP through its Pareto points in log-rate, as BD-PSNR interpolates.
    None when ``rate`` lies outside the anchor's rate span (no extrapolation) or the anchor has one point.
    "dB behind the anchor at equal rate" is this minus the test's PSNR at that rate."""
    ar, ap = pareto(anchor_rate, anchor_psnr)
    if len(ar) < 2 or not spans(ar, rate, rate):
        return None
    return float(pchip(np.log10(ar), ap)(np.log10(rate)))

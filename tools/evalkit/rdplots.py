"""The plots of tools/rd.py: R-D curves, per-frame PSNR and PSNR density, one panel per clip (matplotlib,
imported when a plot is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.rdpoints import Point, curves, invr_c_curves
from evalkit.report import gaussian_kde


# Baselines by family (old results label "H.264" for what is now "H.264 4:2:0"); 4:4:4 solid with filled
# markers, 4:2:0 dashed with open ones. INVR-C curves take colours and markers in the order of their curves.
BASE_STYLE = {"MPEG-1": ("tab:gray", "s"), "MPEG-2": ("tab:brown", "D"), "H.264": ("tab:blue", "^"),
              "H.265": ("tab:green", "v")}
INVR_STYLE = [("tab:red", "o"), ("tab:purple", "P"), ("tab:orange", "X"), ("tab:pink", "h"),
              ("tab:olive", "p"), ("tab:cyan", "d"), ("darkorange", "<"), ("black", ">")]


def style(p: Point, invr_names: Sequence[str]) -> dict[str, object]:
    """matplotlib keywords for a point's curve: color, marker, linestyle, marker face."""
    if p.codec == "INVR-U":
        return {"color": "darkred", "marker": "*", "linestyle": ":"}
    if p.codec == "INVR-C":
        i = invr_names.index(p.curve) if p.curve in invr_names else len(invr_names)
        color, marker = INVR_STYLE[i % len(INVR_STYLE)]
        return {"color": color, "marker": marker, "linestyle": "-"}
    color, marker = BASE_STYLE.get(p.codec.split()[0], ("black", "x"))
    full = "4:4:4" in p.codec
    return {"color": color, "marker": marker, "linestyle": "-" if full else "--",
            "markerfacecolor": color if full else "none"}


def plots(outdir: Path, clip_results: list[tuple[dict[str, object], list[Point], dict[str, Point]]], tag: str,
          dpi: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    n = len(clip_results)

    def finish(fig: Any, axes: Any, name: str, xlabel: str, ylabel: str, title: str, log_x: bool = False) -> None:
        """Label each clip's axes, then save the figure as ``name``_``tag``.png."""
        for ax, (clip, _, _) in zip(axes[0], clip_results):
            if log_x:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(title.format(**clip), fontsize=9)
            ax.grid(True, which="both" if log_x else "major", alpha=0.3)
            ax.legend(fontsize=6.5)
        fig.tight_layout()
        path = outdir / f"{name}_{tag}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        written.append(str(path))

    def line_style(p: Point, invr: Sequence[str]) -> dict[str, object]:
        return {k: v for k, v in style(p, invr).items() if k in ("color", "linestyle")}

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False)
    for ax, (_, pts, _) in zip(axes[0], clip_results):
        cs = curves(pts)
        invr = invr_c_curves(cs)
        for name, cpts in cs.items():
            ax.plot([p.kbps for p in cpts], [p.psnr_mean for p in cpts], label=name, ms=5, lw=1.2,
                    **style(cpts[0], invr))  # type: ignore[arg-type]
    finish(fig, axes, "rd", "kbit/s", "RGB PSNR (dB)", "{name} {width}x{height}, {frames} frames", log_x=True)

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.2), squeeze=False)
    for ax, (_, pts, chosen) in zip(axes[0], clip_results):
        invr = invr_c_curves(curves(pts))
        for key, p in chosen.items():
            ax.plot(range(len(p.psnr)), p.psnr, lw=1.1, label=f"{key} ({p.kbps:.0f} kbit/s)",
                    **line_style(p, invr))  # type: ignore[arg-type]
    finish(fig, axes, "perframe", "frame", "RGB PSNR (dB)", "{name}: per-frame PSNR")

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.2), squeeze=False)
    for ax, (_, pts, chosen) in zip(axes[0], clip_results):
        invr = invr_c_curves(curves(pts))
        allv = [v for p in chosen.values() for v in p.psnr]
        grid = np.linspace(min(allv) - 1, max(allv) + 1, 300)
        for key, p in chosen.items():
            ax.plot(grid, gaussian_kde(p.psnr, grid), lw=1.2, label=key,
                    **line_style(p, invr))  # type: ignore[arg-type]
    finish(fig, axes, "density", "RGB PSNR (dB)", "density", "{name}: PSNR density over frames")
    return written

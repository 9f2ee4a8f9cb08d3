"""Statistics and reporting: a PSNR density, mean and spread, the machine a number was measured on, the
command line that measured it, the head of every tool's JSON report, a tool's exit, and number formatting."""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.stats import gaussian_kde as stats_gaussian_kde
from scipy.stats import norm

import invrcodec
from invrcodec.errors import InvrError


def say(msg: str) -> None:
    """A progress line on stderr (stdout is the tool's result)."""
    print(msg, file=sys.stderr, flush=True)


def gaussian_kde(values: Sequence[float], grid: np.ndarray, min_bandwidth: float = 0.05) -> np.ndarray:
    """Gaussian kernel density with Scott's bandwidth (SciPy's :class:`scipy.stats.gaussian_kde`), evaluated on
    ``grid``; the bandwidth is at least ``min_bandwidth`` (dB) so that a clip whose frames all score alike
    still draws a peak rather than failing on a singular covariance."""
    v = np.asarray(values, float)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    if std * len(v) ** (-1 / 5) < min_bandwidth:
        if std == 0.0:
            return np.mean([norm.pdf(grid, loc=x, scale=min_bandwidth) for x in v], axis=0)
        return stats_gaussian_kde(v, bw_method=min_bandwidth / std)(grid)
    return stats_gaussian_kde(v, bw_method="scott")(grid)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std())


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import av

    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "av": av.__version__,
        "invrcodec": invrcodec.__version__,
        "date": _dt.date.today().isoformat(),
    }


def command_line() -> str:
    return " ".join(["python", *[a if a and " " not in a else repr(a) for a in sys.argv]])


def report_head(tool: str, args: argparse.Namespace) -> dict[str, object]:
    """What every tool's JSON report starts with: the tool, its command line, the machine, its settings."""
    return {
        "tool": tool, "command": command_line(), "machine": machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def run_tool(tool: str, main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status; a codec or value error is one line on stderr and status 1."""
    try:
        sys.exit(main())
    except (InvrError, ValueError) as exc:
        print(f"{tool}: error: {exc}", file=sys.stderr)
        sys.exit(1)


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else f"{value:.{digits}f}{suffix}"

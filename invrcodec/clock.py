"""Where an encode's time goes: wall seconds by phase (start-up, read, compile, train, check, refine, code,
render, write), for ``invr-enc --benchmark`` and ``tools/bench.py``.

A phase entered inside another is not counted in the outer one, so the phases add up to the time measured:
``train`` around a fit that compiles and checks its PSNR counts only the steps.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

# The order phases are reported in (others follow in the order they were first entered).
ORDER = ("start-up", "read", "compile", "train", "check", "refine", "code", "render", "write")


class PhaseClock:
    """Wall seconds spent in each named phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._nested: list[float] = []  # per open phase: seconds of the phases opened inside it

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            yield
        finally:
            inner = self._nested.pop()
            spent = time.perf_counter() - start
            self.add(name, spent - inner)
            if self._nested:
                self._nested[-1] += spent

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def timed(self, items: Iterable[T], name: str) -> Iterator[T]:
        """``items``, with the time spent producing each counted in phase ``name``."""
        it = iter(items)
        while True:
            with self.phase(name):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item

    def report(self) -> str:
        """``start-up 0.91 s, read 0.02 s, ...`` in ORDER, phases under 5 ms left out."""
        names = [n for n in ORDER if n in self.seconds] + [n for n in self.seconds if n not in ORDER]
        return ", ".join(f"{n} {self.seconds[n]:.2f} s" for n in names if self.seconds[n] >= 0.005)


def process_age() -> float | None:
    """Seconds since this process started (Linux), or None where the system does not say."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


__all__ = ["ORDER", "PhaseClock", "process_age"]

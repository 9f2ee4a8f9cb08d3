"""Average-bitrate control: a QP per chunk so that the file meets ``--bitrate`` over the clip.

A chunk's size falls monotonically with its QP, and coding a trained chunk's weights without refinement takes
milliseconds, so the QP is found by bisection on trial codings of the chunk itself rather than from a model
of rate against QP. Each chunk aims at its frames' share of the target plus what earlier chunks left unspent
(or overspent), so the error of one chunk (refinement moves its size by a few percent) is paid back by the
next ones and the whole file lands close to the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

QP_RANGE = (0, 127)  # user QPs searched (nncodec accepts them all at the default density)


@dataclass
class RateControl:
    """Running account of bytes against a target of ``kbps`` kbit/s at ``frame_rate`` frames per second."""

    kbps: float
    frame_rate: Fraction
    frames: int = 0
    spent: int = 0

    @property
    def bytes_per_frame(self) -> float:
        return self.kbps * 1000.0 / 8.0 / float(self.frame_rate)

    def budget(self, frames: int, share: float = 1.0) -> float:
        """Bytes a chunk of ``frames`` frames may take: its share of the target plus ``share`` of the balance."""
        balance = self.bytes_per_frame * self.frames - self.spent
        return max(1.0, self.bytes_per_frame * frames + share * balance)

    def record(self, frames: int, size: int) -> None:
        self.frames += frames
        self.spent += size


def choose_qp(size_at: Callable[[int], int], budget: float, lo: int = QP_RANGE[0], hi: int = QP_RANGE[1]) -> int:
    """The finest QP in [lo, hi] whose ``size_at(qp)`` fits ``budget`` (``hi`` if none does)."""
    if size_at(lo) <= budget:
        return lo
    while hi - lo > 1:  # size_at(lo) > budget throughout
        mid = (lo + hi) // 2
        if size_at(mid) <= budget:
            hi = mid
        else:
            lo = mid
    return hi

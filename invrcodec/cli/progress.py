"""Progress for programs: ``--progress FILE|-`` writes blocks of ``key=value`` lines (ffmpeg's ``-progress``).
The terminal's own status line is :class:`invrcodec.cli.logs.StatusLine`."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .logs import clear_status
from .run import CliError

__all__ = ["ProgressOutput", "format_duration"]


def format_duration(seconds: float) -> str:
    """``H:MM:SS``, as an ETA is shown."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


class ProgressOutput:
    """``--progress FILE|-``: blocks of ``key=value`` lines for programs, ending ``progress=continue|end``."""

    def __init__(self, target: str, stdout_busy: bool) -> None:
        self._own = False
        self.stream: TextIO
        if target == "-":
            self.stream = sys.stderr if stdout_busy else sys.stdout
        else:
            try:
                self.stream = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise CliError(f"{target}: cannot write progress: {exc.strerror}") from exc
            self._own = True
        self._last = 0.0

    def report(self, values: dict[str, Any], *, final: bool = False, force: bool = False) -> None:
        now = time.monotonic()
        if not (final or force) and now - self._last < 0.5:
            return
        self._last = now
        clear_status(self.stream)
        lines = [f"{k}={v}" for k, v in values.items()]
        lines.append("progress=end" if final else "progress=continue")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._own:
            self.stream.close()

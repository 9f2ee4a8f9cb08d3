"""Where the tools' messages go: invrcodec's loggers on stderr, one prefix per level, and the terminal's status
line, which every message (and every error line of :mod:`invrcodec.cli.run`) clears first."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["LOG_LEVELS", "HeldInfo", "StatusLine", "clear_status", "route_logs", "setup_logging", "status_line",
           "tracebacks"]

LOG_LEVELS = {
    "quiet": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "verbose": logging.DEBUG,
    "debug": logging.DEBUG,
}


class StatusLine:
    """One self-rewriting line on a terminal's stderr (progress), cleared before any log message."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.active = False
        self._width = 0

    def show(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)
        self.active = True

    def clear(self) -> None:
        if self.active:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self.active = False
            self._width = 0


_status: StatusLine | None = None  # the process's one status line, while progress is shown
_traceback = False  # whether logged exceptions and error lines come with their traceback


def status_line(enabled: bool) -> StatusLine | None:
    """The terminal status line, when stderr is a terminal and progress is wanted."""
    global _status
    _status = StatusLine(sys.stderr) if enabled and sys.stderr.isatty() else None
    return _status


def clear_status(stream: TextIO | None = None) -> None:
    """Clear the status line before something else is written (to ``stream``: only when it is stderr)."""
    if _status is not None and (stream is None or stream is sys.stderr):
        _status.clear()


def tracebacks() -> bool:
    """Whether the options asked for tracebacks (``--loglevel debug``, ``-vv``)."""
    return _traceback


class _Formatter(logging.Formatter):
    def __init__(self, tool: str) -> None:
        super().__init__()
        self.tool = tool

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.ERROR:
            text = f"{self.tool}: error: {msg}"
        elif record.levelno >= logging.WARNING:
            text = f"{self.tool}: warning: {msg}"
        elif record.levelno >= logging.INFO:
            text = msg
        else:
            text = f"{self.tool}: [debug] {record.name}: {msg}"
        if record.exc_info and _traceback:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    def emit(self, record: logging.LogRecord) -> None:
        clear_status()
        super().emit(record)


def setup_logging(tool: str, verbose: int, quiet: int, loglevel: str | None) -> int:
    """Route invrcodec's loggers to stderr at the level the options ask for; return that level."""
    if loglevel is not None:
        level = LOG_LEVELS[loglevel]
    elif verbose:
        level = logging.DEBUG
    elif quiet:
        level = logging.WARNING if quiet == 1 else logging.ERROR
    else:
        level = logging.INFO
    route_logs(tool, level, tracebacks=loglevel == "debug" or (loglevel is None and verbose >= 2))
    return level


def route_logs(tool: str, level: int, *, tracebacks: bool) -> None:
    """Send invrcodec's loggers (and Python's warnings) to the current stderr at ``level``, each message
    prefixed as the tools print them, replacing the handler of an earlier call; with ``tracebacks``, logged
    exceptions and the one-line errors come with their traceback."""
    global _traceback
    _traceback = tracebacks
    handler = _Handler(sys.stderr)
    handler.setFormatter(_Formatter(tool))
    for name in ("invrcodec", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.captureWarnings(True)
    if level <= logging.DEBUG:
        logging.getLogger("libav").handlers[:] = [handler]
        logging.getLogger("libav").setLevel(logging.INFO)


class HeldInfo(logging.Filter):
    """Holds the tools' INFO lines back until :meth:`release`, so that a run which fails before it has
    produced anything prints its error as the one line it is (spec of the CLIs: errors are one line)."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[logging.LogRecord] = []
        self._handlers = list(logging.getLogger("invrcodec").handlers)
        for h in self._handlers:
            h.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            self._held.append(record)
            return False
        return True

    def release(self) -> None:
        """Print what was held (once); from now on nothing is held."""
        held, self._held = self._held, []
        self.drop()
        for record in held:
            for h in self._handlers:
                h.handle(record)

    def drop(self) -> None:
        """Forget what was held and stop holding."""
        self._held = []
        for h in self._handlers:
            h.removeFilter(self)

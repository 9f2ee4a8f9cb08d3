"""Running a command: every outcome becomes an exit status and, for an error, one line on stderr.

Exit statuses (docs: /work/shared/guide/CLI.md, the FFmpeg and x264 habits): 0, 1 for an error (``tool: error:
message``), 2 for a usage error, 130 on Ctrl-C, 128 + N on another signal, 141 when the reader of our stdout went
away (a quiet end); a traceback only with ``--loglevel debug``.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from ..errors import InvrError
from .logs import clear_status, tracebacks

__all__ = ["CliError", "Interrupted", "execute", "exit_with", "is_broken_pipe", "quiet_stdout", "raise_pending_signal",
           "run_main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPT = 130
EXIT_TERMINATED = 143
EXIT_PIPE = 141  # what a shell reports for a process ended by SIGPIPE: the reader stopped reading


class CliError(Exception):
    """An expected failure the tool reports as one line (``tool: error: message``)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(BaseException):
    """SIGTERM or SIGHUP, raised where the program is so that cleanup runs as for Ctrl-C (SIGINT raises
    KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# -- signals --------------------------------------------------------------------------------------------

_pending_signal: int | None = None


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def _signal_to_exception(signum: int, _frame: object) -> None:
    global _pending_signal
    _pending_signal = signum
    _raise_for(signum)


def raise_pending_signal() -> None:
    """Raise again for a signal already received. The handler raises wherever the program is, and a bare
    ``except:`` in some library can swallow that; long loops call this so an interrupt is never lost."""
    if _pending_signal is not None:
        _raise_for(_pending_signal)


@contextmanager
def _signals() -> Iterator[None]:
    global _pending_signal
    _pending_signal = None
    previous = {}
    # SIGINT too, as ffmpeg does: a process started with SIGINT ignored (a background job of a non-interactive
    # shell, as under some CI runners) gets no KeyboardInterrupt handler from Python and would ignore Ctrl-C.
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, _signal_to_exception)
        except (ValueError, OSError):  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _pending_signal = None  # handled: execute() turns it into an exit status


# -- a reader that went away ----------------------------------------------------------------------------


def quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush cannot complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def is_broken_pipe(exc: BaseException) -> bool:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE):
            return True
        e = e.__cause__ or e.__context__
    return False


# -- outcomes -------------------------------------------------------------------------------------------


def execute(tool: str, body: Callable[[], int | None]) -> int:
    """Run ``body`` and turn every outcome into an exit status, printing one line for an error."""
    try:
        with _signals():
            code = body()
        return EXIT_OK if code is None else code
    except CliError as exc:
        _error(tool, str(exc), exc)
        return exc.code
    except KeyboardInterrupt:
        clear_status()
        sys.stderr.write(f"\n{tool}: interrupted\n")
        return EXIT_INTERRUPT
    except Interrupted as exc:
        clear_status()
        sys.stderr.write(f"{tool}: terminated by signal {exc.signum}\n")
        return 128 + exc.signum
    except Exception as exc:  # noqa: BLE001 - whatever it is, one line (a bug says how to see more)
        if is_broken_pipe(exc):
            quiet_stdout()
            return EXIT_PIPE
        _error(tool, _message(exc), exc)
        return EXIT_ERROR


def _message(exc: Exception) -> str:
    """The one line an error is reported as."""
    if isinstance(exc, InvrError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return "out of memory (try a smaller --chunk-frames, --hidden or --scale)"
    hint = "" if tracebacks() else " (run with --loglevel debug for a traceback)"  # a bug: still one line
    return f"internal error: {type(exc).__name__}: {exc}{hint}"


def _error(tool: str, message: str, exc: BaseException) -> None:
    clear_status()
    sys.stderr.write(f"{tool}: error: {message}\n")
    if tracebacks():
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.stderr.flush()


def run_main(command: click.Command, tool: str, argv: list[str] | None = None) -> int:
    """Entry point body: parse with click (usage errors exit 2), run, return the exit status."""
    try:
        rv = command.main(args=argv, prog_name=tool, standalone_mode=False)
    except click.exceptions.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        return EXIT_INTERRUPT
    if isinstance(rv, int):
        return rv
    return EXIT_OK


def exit_with(code: int) -> None:
    """Flush stdout and exit, treating a reader that has gone away as the quiet end it is."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        quiet_stdout()
        code = code or EXIT_PIPE
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            quiet_stdout()
            code = code or EXIT_PIPE
    sys.exit(code)

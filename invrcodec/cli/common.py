"""What invr-enc and invr-dec share: options, logging, error handling, safe output, progress.

Conventions (docs: /work/shared/guide/CLI.md, the FFmpeg and x264 habits): logs and progress go to stderr, never
stdout; an error is one line ``tool: error: message`` and exit status 1 (2 for a usage error, 130 on Ctrl-C,
143 on SIGTERM); a traceback only with ``--loglevel debug``; an output file appears only when it is whole and
an existing one is replaced only with ``-y``; a reader closing our stdout ends the run quietly.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any, BinaryIO, TextIO

import click

from ..errors import InvrError

__all__ = [
    "LOG_LEVELS",
    "CliError",
    "Interrupted",
    "ProgressOutput",
    "SafeOutput",
    "StatusLine",
    "common_options",
    "execute",
    "format_duration",
    "open_stdin",
    "open_stdout",
    "parse_device",
    "raise_pending_signal",
    "run_main",
    "version_message",
]

log = logging.getLogger("invrcodec.cli")

LOG_LEVELS = {
    "quiet": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "verbose": logging.DEBUG,
    "debug": logging.DEBUG,
}

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


# -- logging and the status line ---------------------------------------------------------------------


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


_status: StatusLine | None = None
_traceback = False


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
        if _status is not None:
            _status.clear()
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


def status_line(enabled: bool) -> StatusLine | None:
    """The terminal status line, when stderr is a terminal and progress is wanted."""
    global _status
    if enabled and sys.stderr.isatty():
        _status = StatusLine(sys.stderr)
    else:
        _status = None
    return _status


def format_duration(seconds: float) -> str:
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
        if _status is not None and self.stream is sys.stderr:
            _status.clear()
        lines = [f"{k}={v}" for k, v in values.items()]
        lines.append("progress=end" if final else "progress=continue")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._own:
            self.stream.close()


# -- options --------------------------------------------------------------------------------------------


def version_message(tool: str) -> str:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"{tool} (invrcodec) {v('invrcodec')}\n"
        f"torch {v('torch')}, av {v('av')}, nncodec {v('nncodec')}, numpy {v('numpy')}"
    )


def _version_callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_message(ctx.info_name or "invr"))
        ctx.exit(0)


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """-y/-n, -v/-q/--loglevel, --no-progress, --version: the options every tool takes."""
    decorators = [
        click.option("-y", "--overwrite", "yes", is_flag=True, help="Overwrite OUT if it exists."),
        click.option("-n", "--no-overwrite", "no", is_flag=True, help="Never overwrite OUT; exit 1 if it exists."),
        click.option("-v", "--verbose", count=True, help="More messages (debug level)."),
        click.option("-q", "--quiet", count=True, help="Fewer messages: -q warnings and errors, -qq errors only."),
        click.option("--loglevel", type=click.Choice(list(LOG_LEVELS)), default=None,
                     help="Log level on stderr; 'debug' also shows tracebacks."),
        click.option("--no-progress", is_flag=True, help="No progress line on the terminal."),
        click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version_callback,
                     help="Show the version and exit."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def threads_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--threads", type=click.IntRange(min=0), default=0, metavar="N",
                        help="CPU threads for the networks (0 = automatic).")(f)


def apply_threads(n: int) -> None:
    """Cap torch's CPU threads (on a shared machine one thread is often faster than two)."""
    if n:
        import torch

        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # already fixed once work has started
            pass


def overwrite_policy(opts: dict[str, Any]) -> bool | None:
    """True for -y, False for -n, None for neither (ask a terminal user, else refuse)."""
    yes, no = opts.pop("yes"), opts.pop("no")
    if yes and no:
        raise click.UsageError("-y and -n contradict each other; give one")
    return True if yes else False if no else None


def parse_device(_ctx: click.Context | None, _param: click.Parameter | None, value: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    v = value.strip().lower()
    if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise click.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N")


# -- input and output -----------------------------------------------------------------------------------


def open_stdin(tool_hint: str) -> BinaryIO:
    """Standard input as bytes; refuses a terminal (nothing sensible to read there)."""
    stream = sys.stdin.buffer
    if stream.isatty():
        raise CliError(f"stdin: is a terminal; {tool_hint}")
    return stream


def open_stdout() -> BinaryIO:
    """Standard output as bytes; refuses a terminal (binary video would garble it)."""
    if sys.stdout.isatty():
        raise CliError("stdout: is a terminal; redirect it (e.g. '| ffplay -') or give an output file")
    return sys.stdout.buffer


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _ask_overwrite(path: str) -> bool:
    if _status is not None:
        _status.clear()
    sys.stderr.write(f"File '{path}' already exists. Overwrite? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def check_output(path: str, overwrite: bool | None, *, stdin_in_use: bool = False) -> None:
    """Refuse an existing regular file at ``path`` unless ``-y`` (or a terminal user says yes)."""
    if path == "-":
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise CliError(f"{path}: cannot create: no such directory {parent}") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise CliError(f"{path}: cannot create: permission denied in {parent}") from None
        return
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise CliError(f"{path}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        return  # a device or a FIFO (/dev/null, a named pipe) is written to, not replaced
    if overwrite:
        return
    if overwrite is None and not stdin_in_use and sys.stdin is not None and sys.stdin.isatty():
        if _ask_overwrite(path):
            return
        raise CliError(f"{path}: already exists; not overwriting")
    if overwrite is False:
        raise CliError(f"{path}: already exists; not overwriting (-n)")
    raise CliError(f"{path}: already exists (use -y to overwrite)")


class SafeOutput:
    """Write ``path`` through a temporary file in the same directory, renamed over it only on success.

    Used as a context manager: ``with SafeOutput(path, overwrite) as tmp:`` ... ``out.commit()``. If the block
    fails, or ends without :meth:`commit`, the temporary file (and only it) is removed. An existing device
    or FIFO at ``path`` is written directly (no temporary, nothing renamed).
    """

    def __init__(self, path: str, overwrite: bool | None) -> None:
        self.path = path
        self.overwrite = overwrite
        self.tmp: str | None = None
        self.direct = False
        self.committed = False
        self._existed = False

    def __enter__(self) -> SafeOutput:
        try:
            st = os.stat(self.path)
            self.direct = not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)
        except OSError:
            self.direct = False
        if self.direct:
            return self
        self._existed = os.path.lexists(self.path)
        directory, name = os.path.split(os.path.abspath(self.path))
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
        except OSError as exc:
            raise CliError(f"{self.path}: cannot create: {exc.strerror} (in {directory})") from exc
        os.close(fd)
        return self

    @property
    def target(self) -> str:
        """The path to write to now."""
        return self.path if self.direct else str(self.tmp)

    def commit(self) -> None:
        """Move the finished temporary file to its final name."""
        if self.direct or self.tmp is None:
            self.committed = True
            return
        if not self.overwrite and not self._existed and os.path.lexists(self.path):
            raise CliError(f"{self.path}: appeared while writing; not overwriting")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)
        os.replace(self.tmp, self.path)
        self.committed = True

    def __exit__(self, *exc: object) -> None:
        if not self.committed and self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None


class CountingWriter:
    """A write-only binary stream that counts the bytes passing through (for stdout)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.count = 0

    def write(self, data: bytes) -> int:
        n = self.inner.write(data)
        n = len(data) if n is None else n
        self.count += n
        return n

    def flush(self) -> None:
        self.inner.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.flush()

    @property
    def closed(self) -> bool:
        return False


# -- running a command ----------------------------------------------------------------------------------


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


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush cannot complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _is_broken_pipe(exc: BaseException) -> bool:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE):
            return True
        e = e.__cause__ or e.__context__
    return False


def execute(tool: str, body: Callable[[], int | None]) -> int:
    """Run ``body`` and turn every outcome into an exit status, printing one line for an error."""
    try:
        with _signals():
            code = body()
        return EXIT_OK if code is None else code
    except CliError as exc:
        _error(tool, str(exc), exc)
        return exc.code
    except InvrError as exc:
        if _is_broken_pipe(exc):
            _quiet_stdout()
            return EXIT_PIPE
        _error(tool, str(exc), exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if _status is not None:
            _status.clear()
        sys.stderr.write(f"\n{tool}: interrupted\n")
        return EXIT_INTERRUPT
    except Interrupted as exc:
        if _status is not None:
            _status.clear()
        sys.stderr.write(f"{tool}: terminated by signal {exc.signum}\n")
        return 128 + exc.signum
    except OSError as exc:
        if _is_broken_pipe(exc):
            _quiet_stdout()
            return EXIT_PIPE
        where = f"{exc.filename}: " if exc.filename else ""
        _error(tool, f"{where}{exc.strerror or exc}", exc)
        return EXIT_ERROR
    except MemoryError as exc:
        _error(tool, "out of memory (try a smaller --chunk-frames, --hidden or --scale)", exc)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line unless debugging
        if _is_broken_pipe(exc):
            _quiet_stdout()
            return EXIT_PIPE
        hint = "" if _traceback else " (run with --loglevel debug for a traceback)"
        _error(tool, f"internal error: {type(exc).__name__}: {exc}{hint}", exc)
        return EXIT_ERROR


def _error(tool: str, message: str, exc: BaseException) -> None:
    if _status is not None:
        _status.clear()
    sys.stderr.write(f"{tool}: error: {message}\n")
    if _traceback:
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
    except click.exceptions.Abort:
        return EXIT_INTERRUPT
    except KeyboardInterrupt:
        return EXIT_INTERRUPT
    if isinstance(rv, int):
        return rv
    return EXIT_OK


def exit_with(code: int) -> None:
    """Flush stdout and exit, treating a reader that has gone away as the quiet end it is."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        _quiet_stdout()
        code = code or EXIT_PIPE
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            _quiet_stdout()
            code = code or EXIT_PIPE
    sys.exit(code)


def stream_name(path: str, *, output: bool = False) -> str:
    if path == "-":
        return "stdout" if output else "stdin"
    return path


def parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    """A click callback that turns ``parse``'s ValueError into a usage error (exit 2)."""

    def callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc

    return callback

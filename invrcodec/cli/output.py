"""Where the tools read and write: stdin and stdout as bytes (never a terminal), the -y/-n policy for an
existing output, and :class:`SafeOutput`, through which an output file appears only when it is whole."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from typing import BinaryIO

from .logs import clear_status
from .run import CliError

__all__ = ["CountingWriter", "SafeOutput", "check_output", "open_stdin", "open_stdout", "same_file",
           "stream_name"]


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


def stream_name(path: str, *, output: bool = False) -> str:
    if path == "-":
        return "stdout" if output else "stdin"
    return path


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _ask_overwrite(path: str) -> bool:
    clear_status()
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

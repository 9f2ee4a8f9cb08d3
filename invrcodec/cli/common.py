"""What invr-enc, invr-dec and invr-probe share: the options every tool takes, and one import for the rest.

The shared machinery lives by job in :mod:`.logs` (loggers and the status line), :mod:`.progress` (``--progress``
lines), :mod:`.output` (stdin/stdout, -y/-n, safe output) and :mod:`.run` (exit statuses, one-line errors,
signals); the commands import it all from here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import click

from .logs import LOG_LEVELS, HeldInfo, StatusLine, route_logs, setup_logging, status_line
from .output import CountingWriter, SafeOutput, check_output, open_stdin, open_stdout, same_file, stream_name
from .progress import ProgressOutput, format_duration
from .run import CliError, Interrupted, execute, exit_with, is_broken_pipe, raise_pending_signal, run_main

__all__ = [
    "LOG_LEVELS",
    "CliError",
    "CountingWriter",
    "HeldInfo",
    "Interrupted",
    "ProgressOutput",
    "SafeOutput",
    "StatusLine",
    "ToolOptions",
    "apply_threads",
    "check_output",
    "common_options",
    "execute",
    "exit_with",
    "format_duration",
    "is_broken_pipe",
    "open_stdin",
    "open_stdout",
    "overwrite_policy",
    "parse_device",
    "parsed",
    "raise_pending_signal",
    "route_logs",
    "run_main",
    "same_file",
    "setup_logging",
    "status_line",
    "stream_name",
    "threads_option",
    "version_message",
]

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


@dataclass(frozen=True)
class ToolOptions:
    """The options every tool takes, read once: where its messages go and whether it may overwrite."""

    overwrite: bool | None  # -y True, -n False, neither None (ask a terminal user, else refuse)
    verbose: int
    quiet: int
    loglevel: str | None
    progress: bool  # not --no-progress

    def setup_logging(self, tool: str) -> int:
        """Route the logs as -v/-q/--loglevel ask; the level."""
        return setup_logging(tool, self.verbose, self.quiet, self.loglevel)


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """-y/-n, -v/-q/--loglevel, --no-progress, --version: the options every tool takes, handed to the command
    as one :class:`ToolOptions` argument, ``tool``."""

    @functools.wraps(f)
    def command(*args: Any, yes: bool, no: bool, verbose: int, quiet: int, loglevel: str | None,
                no_progress: bool, **kwargs: Any) -> Any:
        tool = ToolOptions(overwrite_policy(yes, no), verbose, quiet, loglevel, progress=not no_progress)
        return f(*args, tool=tool, **kwargs)

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
        command = decorator(command)
    return command


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


def overwrite_policy(yes: bool, no: bool) -> bool | None:
    """True for -y, False for -n, None for neither (ask a terminal user, else refuse)."""
    if yes and no:
        raise click.UsageError("-y and -n contradict each other; give one")
    return True if yes else False if no else None


def parse_device(_ctx: click.Context | None, _param: click.Parameter | None, value: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    v = value.strip().lower()
    if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise click.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N")


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

"""The C allocator, set for a process that trains: keep freed tensor memory instead of handing it back.

A training step allocates and frees the same few-megabyte tensors (an 8,192-pixel batch is 4 MB per hidden
layer in float32). glibc's malloc serves blocks that size with ``mmap`` and returns them with ``munmap``, or
trims the top of its heap on ``free``, so every step pays system calls and fresh, zeroed pages: on a 2-core
CPU, 3.4 s of a 12.6 s ``invr-enc --psnr 30`` (bigbuckbunny, 15 frames, 128x128) was system time, and 11 s of
19 s with the eager ``ultrafast`` (docs/results.md, "The whole command"). :func:`keep_freed_memory` raises the
mmap threshold to glibc's maximum (32 MiB on 64-bit) and the trim threshold to 1 GiB: the blocks are reused
from the heap. The peak is unchanged; the resident set no longer shrinks after it, as a command that exits
does not need.

It is a process-wide setting, so the command-line tools make it, not the library. Elsewhere than glibc it
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1 << 30

__all__ = ["keep_freed_memory"]


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see the module); whether they were set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not ok:
        log.debug("malloc thresholds not set")
    return ok

"""Small facts about file objects that the muxer, the demuxer and the media layer share.

Nothing here imports torch, construct or nncodec: the format layer uses it.
"""

from __future__ import annotations

from typing import IO, Any

__all__ = ["is_seekable"]


def is_seekable(f: IO[Any]) -> bool:
    """Whether ``f`` can seek and tell (a regular file, BytesIO), not a pipe, socket or a closed file."""
    try:
        if not f.seekable():
            return False
        f.tell()
        return True
    except (AttributeError, OSError, ValueError):
        return False

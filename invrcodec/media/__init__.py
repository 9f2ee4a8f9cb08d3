"""Media I/O: reading sources into RGB frames and writing RGB frames out through PyAV
(:mod:`~invrcodec.media.pyav`), and the Y4M header checks (:mod:`~invrcodec.media.y4m`). It may import the ground
floor and :mod:`invrcodec.format` (its limits), PyAV and numpy; not the coding, the network, the pipeline or the
command lines. ``from invrcodec.media import VideoReader, VideoWriter`` keeps working: the names are fetched from
:mod:`~invrcodec.media.pyav` when first asked for, so importing this package imports no PyAV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from invrcodec.media.pyav import VideoReader, VideoWriter

__all__ = ["VideoReader", "VideoWriter"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from invrcodec.media import pyav

        return getattr(pyav, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

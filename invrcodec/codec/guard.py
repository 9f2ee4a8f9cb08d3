"""A guard on work: refuse a lawful but huge decode before spending minutes on it.

A 2 KB file may declare 65535x65535 frames: every one of its 4.3 billion pixels is a run of the network, and
the RGB alone is 12.9 GB per frame. As image libraries do against decompression bombs (Pillow's
``Image.MAX_IMAGE_PIXELS``), a decoder takes a limit on the pixels of one frame and says what the decode would
cost when the file exceeds it; the caller raises the limit to go ahead.
"""

from __future__ import annotations

from invrcodec.errors import InvrLimitError
from invrcodec.types import Representation

__all__ = ["DEFAULT_MAX_PIXELS", "check_frame_size", "decode_cost"]

DEFAULT_MAX_PIXELS = 8192 * 8192  # 67,108,864: four 8K UHD frames' worth (7680x4320 is 33,177,600)


def _si(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} "


def decode_cost(width: int, height: int, frames: int, rep: Representation) -> str:
    """What decoding ``frames`` frames (0: unknown) of ``width`` x ``height`` costs, in words: network
    runs, multiply-adds (of the layers after the first, which per-axis tables replace) and RGB bytes."""
    pixels = width * height
    per_pixel = rep.hidden * rep.hidden * (rep.layers - 1) + 3 * rep.hidden
    n = max(frames, 1)
    what = f"{frames} frames" if frames else "each frame"
    runs, macs = _si(pixels * n).strip(), _si(pixels * n * per_pixel).strip()
    return f"{what} would take {runs} network runs ({macs} multiply-adds) and {_si(pixels * n * 3)}B of RGB"


def check_frame_size(width: int, height: int, frames: int, rep: Representation, max_pixels: int) -> None:
    """Refuse (InvrLimitError, one line with the cost) frames of more than ``max_pixels`` pixels."""
    pixels = width * height
    if pixels > max_pixels:
        raise InvrLimitError(
            f"{width}x{height} is {pixels} pixels per frame, over the limit of {max_pixels}: "
            f"{decode_cost(width, height, frames, rep)}"
        )

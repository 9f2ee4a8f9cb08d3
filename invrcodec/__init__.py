"""invrcodec: video stored as neural networks (INVR), with DeepCABAC-coded weights."""

from __future__ import annotations

from invrcodec.codec.container import open
from invrcodec.version import __version__

__all__ = ["__version__", "open"]

"""invrcodec: video stored as neural networks (INVR), with DeepCABAC-coded weights."""

from __future__ import annotations

__version__ = "0.1.0"

from invrcodec.codec.container import open

__all__ = ["__version__", "open"]

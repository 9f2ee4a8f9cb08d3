"""invrcodec: video stored as neural networks (INVR), with DeepCABAC-coded weights."""

from __future__ import annotations

__version__ = "0.1.0"

from invrcodec.container import open  # noqa: E402  (after __version__, which the container may read)

__all__ = ["__version__", "open"]

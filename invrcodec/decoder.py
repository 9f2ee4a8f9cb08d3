"""``from invrcodec.decoder import Decoder``, the public path: the decoder lives in :mod:`invrcodec.codec.decoder`."""

from __future__ import annotations

from invrcodec.codec.decoder import Decoder

__all__ = ["Decoder"]

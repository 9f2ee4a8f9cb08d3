"""``from invrcodec.encoder import Encoder, EncoderConfig``, as the README shows: the encoder lives in
:mod:`invrcodec.codec.encoder`."""

from __future__ import annotations

from invrcodec.codec.encoder import Encoder, EncoderConfig

__all__ = ["Encoder", "EncoderConfig"]

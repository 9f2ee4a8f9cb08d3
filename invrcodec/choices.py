"""The names and defaults the command line offers, without importing torch (``invr-enc --help`` stays fast).

:mod:`invrcodec.codec.presets` defines what each name means (it imports the training code, hence torch); its tables
are keyed by exactly these names, in this order (tests/test_cli_enc.py checks it).
"""

from __future__ import annotations

__all__ = ["DEFAULT_CHUNK_FRAMES", "DEFAULT_KEYINT", "DEFAULT_PRESET", "DEFAULT_VARIANT", "PRESET_NAMES",
           "VARIANT_NAMES"]

# x264-style speed against quality, fastest first; "paper" is the paper's recipe exactly.
PRESET_NAMES = ("ultrafast", "fast", "medium", "slow", "paper")
DEFAULT_PRESET = "fast"

# The paper's representation variants (sec. 3.3).
VARIANT_NAMES = ("invr", "even", "none", "gaussian", "relu")
DEFAULT_VARIANT = "invr"

# Frames per network of every preset but paper (which keeps the paper's 15). One network for 90 frames instead of
# two for 45, at the same training per frame: BD-rate -24.9% on carphone, -14.3% on bigbuckbunny (first 90 frames
# at 128x128, QP 34-42; docs/results.md, "Frames per network: 90").
DEFAULT_CHUNK_FRAMES = 90

# A key chunk every DEFAULT_KEYINT chunks; the chunks between are P-chunks. 1: every chunk a key chunk. A 45-frame
# P-chunk costs more rate than a key chunk trained for the rate on both shared clips: BD-rate +15.8% on carphone,
# +35.4% on bigbuckbunny (docs/results.md, "P-chunks against rate-aware key chunks"), so they stay an option.
DEFAULT_KEYINT = 1

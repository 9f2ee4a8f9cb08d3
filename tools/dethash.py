#!/usr/bin/env python3
"""One chunk trained and coded as invr-enc does, hashed: run it in several processes to see whether they agree.

    tools/dethash.py CLIP [--frames 10] [--size 64] [--steps 1100] [--qp 38] [--preset fast] [--tag NAME]

Prints ``TAG train <hash of the trained weights> <float PSNR> coded <hash of the coded tensors> <bytes>``.
The chunk goes through the encoder's own ``train_chunks`` and ``code_chunks``; with ``--steps`` of 1,000 or
more the CPU rule compiles the trunk, and ``fast`` trains the last 30% of the steps for the rate. Run it idle,
with a cold kernel cache (``TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)``), or beside busy processes, and compare the
lines (docs/results.md, "The same bytes").
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

from invrcodec.codec.encoder import ChunkJob, Encoder, EncoderConfig
from invrcodec.media.pyav import VideoReader
from invrcodec.types import Prediction


def digest(state: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(np.ascontiguousarray(state[name]).tobytes())
    return h.hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", type=int, default=64, help="square crop scaled to SIZE x SIZE")
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--qp", type=int, default=38)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--tag", default="run")
    args = ap.parse_args()
    with VideoReader(args.clip, frames=args.frames, crop_square=True, scale=(args.size, args.size)) as src:
        info = src.info
        frames = np.stack(list(src))
    enc = Encoder(info, EncoderConfig.from_preset(args.preset, qp=args.qp, steps=args.steps, device="cpu"))
    job = ChunkJob(0, 0, frames, Prediction.KEY)
    fit, = enc.train_chunks([job], [None])
    (packet, _), = enc.code_chunks([job], [fit.state], [None], fits=[fit])
    data = b"".join(t.data for t in packet.tensors)
    print(f"{args.tag} train {digest(fit.state)} {fit.psnr:.4f} coded {hashlib.sha256(data).hexdigest()[:12]} "
          f"{len(data)}", flush=True)


if __name__ == "__main__":
    main()

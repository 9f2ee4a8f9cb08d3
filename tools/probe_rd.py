"""A quick R-D probe of representations: train the first chunk of each clip once per config, code it at
several QPs (with the encoder's refinement), print one JSON line per point. What docs/results.md's
"Choosing the default" tables were measured with; tools/rd.py is the full, file-based evaluation.

    python tools/probe_rd.py '[{"label": "paper dims", "enc_dims": [64, 64, 32]}, {"label": "band-limited"}]' \
        --qp 30,38,46 --frames 15 --steps 800

A config may set hidden, enc_dims, chunk_frames (default: --frames), steps and l1; without enc_dims the
encoding is band-limited to the clip (the default). With ``--encoder`` every QP is a separate encode of the chunk
through the encoder's own training and coding (``Encoder.run_jobs``), as a preset with rate-aware training
needs: it trains for the rate at its QP.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.clips import SHARED_MEDIA, load_clip

from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.codec.jobs import ChunkJob
from invrcodec.net.fit import fit_chunk
from invrcodec.types import Prediction

CLIPS = [str(SHARED_MEDIA / "carphone_pristine.mp4"), str(SHARED_MEDIA / "bigbuckbunny.mp4")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", help="JSON list of configs")
    ap.add_argument("--clips", nargs="*", default=CLIPS)
    ap.add_argument("--qp", default="30,38,46")
    ap.add_argument("--frames", type=int, default=15, help="frames read (and the chunk length by default)")
    ap.add_argument("--steps", type=int, default=None, help="steps of configs that do not set theirs")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--encoder", action="store_true", help="train and code each QP as the encoder does")
    args = ap.parse_args(argv)
    qps = [int(q) for q in args.qp.split(",")]
    for path in args.clips:
        clip = load_clip(path, 128, args.frames)
        for c in json.loads(args.configs):
            cfg = EncoderConfig.from_preset(
                args.preset, hidden=c.get("hidden"), chunk_frames=c.get("chunk_frames", args.frames),
                enc_dims=tuple(c["enc_dims"]) if c.get("enc_dims") else None, steps=c.get("steps", args.steps),
                device="cpu", keyint=1)
            if "l1" in c:
                cfg = replace(cfg, recipe=replace(cfg.recipe, l1=c["l1"]))
            cfg = Encoder(clip.info, cfg).config  # the representation resolved for this stream
            chunk = clip.frames[:cfg.representation.chunk_frames]
            if args.encoder:
                for qp in qps:
                    t0 = time.perf_counter()
                    (packet, _), = Encoder(clip.info, replace(cfg, qp=qp)).run_jobs(
                        [ChunkJob(0, 0, chunk, Prediction.KEY)], [None])
                    print(json.dumps({
                        "clip": clip.name, "label": c.get("label", ""), "qp": qp, "bytes": packet.size,
                        "bpp": round(packet.size * 8 / chunk[..., 0].size, 4), "psnr": round(packet.train_psnr, 3),
                        "seconds": round(time.perf_counter() - t0, 1),
                        "params": cfg.representation.parameter_count,
                        "enc_dims": list(cfg.representation.enc_dims)}), flush=True)
                continue
            t0 = time.perf_counter()
            fit = fit_chunk(chunk, cfg.representation, replace(cfg.recipe, eval_every=cfg.recipe.steps),
                            device=Encoder(clip.info, cfg).device, seed=cfg.seed)
            seconds = time.perf_counter() - t0
            for qp in qps:
                packet = Encoder(clip.info, replace(cfg, qp=qp)).pack(chunk, fit.state, 0, 0)
                print(json.dumps({
                    "clip": clip.name, "label": c.get("label", ""), "qp": qp, "bytes": packet.size,
                    "bpp": round(packet.size * 8 / chunk[..., 0].size, 4), "psnr": round(packet.train_psnr, 3),
                    "float_psnr": round(fit.psnr, 3), "train_s": round(seconds, 1),
                    "params": cfg.representation.parameter_count,
                    "enc_dims": list(cfg.representation.enc_dims)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How many training steps a P-chunk needs against a key chunk, for the same PSNR (issue 11).

For every chunk after the first of each clip: train it as a key chunk (from the SIREN initialisation, the
preset's recipe and step count) and note the float PSNR it ends at; then train it as a P-chunk (from the
previous chunk's reconstruction, as the encoder codes it, with the preset's P-chunk recipe) until it reaches
that same PSNR, or its own step cap. Reported: the steps each took and their ratio, per chunk and on average,
and the PSNR the P-chunk reached. The references are the real ones: every chunk is coded at the default QP as
the encoder would code it, key chunk first.

    python tools/bench_prediction.py ../shared/media/carphone_pristine.mp4 ../shared/media/bigbuckbunny.mp4 \
        --size 128 --frames 90 --chunk-frames 45 --out docs/bench_prediction.json

(The default 90-frame chunks need clips of 180 frames for one P-chunk; the shared clips have 120 and 132.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.clips import Clip, load_clip, parse_size
from evalkit.report import command_line, machine

from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.codec.jobs import ChunkJob
from invrcodec.net.fit import fit_chunk
from invrcodec.types import Prediction, TensorRole


def bench_clip(clip: Clip, cfg: EncoderConfig, log: bool = True,
               variants: Sequence[dict[str, object]] = ({},)) -> list[dict[str, object]]:
    """Per chunk after the first: the key chunk's steps and PSNR, and per P-chunk recipe variant (Recipe
    fields over the preset's, e.g. ``{"p_lr": 1e-3}``) the steps it took to reach that PSNR."""
    enc = Encoder(clip.info, cfg)
    cfg = enc.config  # the representation resolved for this stream (band-limited encoding)
    rep, recipe = cfg.representation, cfg.recipe
    n = rep.chunk_frames
    chunks = [clip.frames[i:i + n] for i in range(0, len(clip.frames) - n + 1, n)]  # whole chunks only
    reference = None
    rows = []
    for i, frames in enumerate(chunks):
        job = ChunkJob(i, i * n, frames, Prediction.KEY if i == 0 else Prediction.PREVIOUS)
        if i > 0:
            t0 = time.perf_counter()
            key = fit_chunk(frames, rep, replace(recipe, eval_every=recipe.steps), device=enc.device,
                            seed=cfg.seed + i)
            key_s = time.perf_counter() - t0
            short: dict[int, float] = {}  # a key chunk's PSNR after a P-chunk's steps (on its own schedule)
            for variant in variants:
                p_recipe = replace(recipe, **variant).for_p_chunk()  # type: ignore[arg-type]
                if p_recipe.steps not in short:
                    short[p_recipe.steps] = fit_chunk(
                        frames, rep, replace(recipe, steps=p_recipe.steps, eval_every=p_recipe.steps),
                        device=enc.device, seed=cfg.seed + i).psnr
                held = {}
                if p_recipe.p_train == "first":
                    held = {k: reference[k] for k in rep.tensor_names(TensorRole.HIDDEN_WEIGHT)}
                t0 = time.perf_counter()
                pred = fit_chunk(frames, rep, replace(p_recipe, eval_every=max(1, p_recipe.steps // 20)),
                                 device=enc.device, seed=cfg.seed + i, psnr_target=key.psnr, init=reference,
                                 anchor=reference, frozen=held)
                p_s = time.perf_counter() - t0
                row = {"chunk": i, "variant": variant, "key_steps": key.steps, "key_psnr": round(key.psnr, 3),
                       "key_s": round(key_s, 1), "key_psnr_at_p_steps": round(short[p_recipe.steps], 3),
                       "p_steps": pred.steps, "p_psnr": round(pred.psnr, 3),
                       "p_s": round(p_s, 1), "p_reached": pred.psnr >= key.psnr,
                       "step_ratio": round(pred.steps / key.steps, 4)}
                rows.append(row)
                if log:
                    print(f"  {clip.name} chunk {i} {variant or 'preset'}: key {key.steps} steps -> "
                          f"{key.psnr:.2f} dB; P {pred.steps} steps -> {pred.psnr:.2f} dB "
                          f"({row['step_ratio']:.0%}); key in {p_recipe.steps} steps -> "
                          f"{short[p_recipe.steps]:.2f} dB", flush=True)
        # the reference of the next chunk: this chunk as the encoder codes it
        (_, reference), = enc.run_jobs([job], [reference] if i > 0 else [None])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--size", default="128", help="N (centre square crop, area-scaled) or 'native'")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--chunk-frames", type=int, default=None, help="frames per chunk (default: the preset's)")
    ap.add_argument("--steps", type=int, default=None, help="a key chunk's steps (default: the preset's)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output")
    ap.add_argument("--variant", action="append", default=None, metavar="JSON",
                    help='P-chunk recipe over the preset\'s, e.g. \'{"p_lr": 1e-3, "p_steps": 0.4}\' (repeatable)')
    args = ap.parse_args(argv)
    variants = [json.loads(v) for v in args.variant] if args.variant else [{}]
    cfg = EncoderConfig.from_preset(args.preset, device="cpu", chunk_frames=args.chunk_frames,
                                    steps=args.steps)
    report: dict[str, object] = {"tool": "bench_prediction", "command": command_line(),
                                 "machine": machine(), "settings": cfg.settings(), "clips": {}}
    ratios: dict[str, list[float]] = {json.dumps(v): [] for v in variants}
    reached: dict[str, list[bool]] = {json.dumps(v): [] for v in variants}
    for path in args.clips:
        clip = load_clip(path, parse_size(args.size), args.frames)
        rows = bench_clip(clip, cfg, variants=variants)
        report["clips"][clip.name] = rows  # type: ignore[index]
        for r in rows:
            ratios[json.dumps(r["variant"])].append(r["step_ratio"])  # type: ignore[arg-type]
            reached[json.dumps(r["variant"])].append(bool(r["p_reached"]))
    report["mean_step_ratio"] = {k: float(np.mean(v)) if v else None for k, v in ratios.items()}
    for k, v in ratios.items():
        print(f"{k}: P-chunk steps / key-chunk steps for the same PSNR, mean over {len(v)} chunks: "
              f"{np.mean(v):.1%}, reached in {sum(reached[k])} of {len(v)}" if v else "no chunk after the first")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    sys.exit(main())

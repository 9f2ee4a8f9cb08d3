"""Representation ablation on one chunk (INVR paper sec. 3.3, Fig. 2a and 2c).

Trains INVR, INVR-Even, INVR-None, INVR-Gaussian and ReLU-Sin (``invrcodec.codec.presets.VARIANTS``) on the same
chunk with the same recipe and seed, recording the full-chunk RGB PSNR every ``--eval-every`` steps against
the step and the wall time. Each trained network is then written as real .invr files, INVR-U (raw float32)
and INVR-C (DeepCABAC at ``--qp``), decoded, and scored per frame (PSNR density, Fig. 2c).

    python tools/ablation.py ../shared/media/carphone_pristine.mp4 --steps 150 --out out/ablation
    python tools/ablation.py CLIP --preset paper --device cuda     # the paper's 25,000 steps, on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import invrcodec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.clips import Clip, load_clip, parse_size
from evalkit.invr import compile_at_once, decode_invr_psnr
from evalkit.report import gaussian_kde, mean_std, report_head, run_tool

from invrcodec.net.devices import resolve_device
from invrcodec.codec.encoder import DEFAULT_QP, Encoder, EncoderConfig
from invrcodec.net.fit import FitProgress, compiles, fit_chunk
from invrcodec.metrics import pooled_psnr
from invrcodec.codec.presets import VARIANTS

LABELS = {"invr": "INVR", "even": "INVR-Even", "none": "INVR-None", "gaussian": "INVR-Gaussian",
          "relu": "ReLU-Sin"}
COLORS = {"invr": "tab:red", "even": "tab:orange", "none": "tab:gray", "gaussian": "tab:purple",
          "relu": "tab:blue"}


def run_variant(clip: Clip, name: str, args: argparse.Namespace, outdir: Path) -> dict[str, object]:
    n = len(clip.frames)
    # The paper's variants with the paper's encoding lengths (not the default band-limited ones).
    common = dict(variant=name, steps=args.steps, lr=args.lr, chunk_frames=n, device=args.device,
                  seed=args.seed, hidden=args.hidden, enc_dims=VARIANTS[name].enc_dims)
    cfg_u = EncoderConfig.from_preset(args.preset, coder="raw32", **common)  # type: ignore[arg-type]
    cfg_c = EncoderConfig.from_preset(args.preset, qp=args.qp, **common)  # type: ignore[arg-type]
    recipe = cfg_u.recipe
    eval_every = args.eval_every or recipe.eval_every
    recipe = replace(recipe, eval_every=eval_every)
    if not args.no_warmup:
        # Untimed: torch.compile's traces for this variant's shapes (training and the PSNR checks), from a fresh
        # cache so that earlier variants' traces neither help nor exhaust the recompile limit.
        # A 3-step fit would not compile by itself (invrcodec.net.fit.compiles): compile it if the timed fit will.
        torch._dynamo.reset()
        device = resolve_device(args.device)
        with compile_at_once() if compiles(recipe, device, None) else contextlib.nullcontext():
            fit_chunk(clip.frames, cfg_u.representation, replace(recipe, steps=3, eval_every=3), device=device,
                      amp=cfg_u.amp)
    curve: list[tuple[int, float, float]] = []

    def record(p: FitProgress) -> None:
        # Between full-chunk checks fit_chunk reports a running estimate; keep only the full-chunk checks.
        if p.step % eval_every == 0 or p.step == p.steps:
            curve.append((p.step, p.psnr, p.elapsed))
            if len(curve) % max(1, args.print_every) == 0 or p.step == p.steps:
                print(f"  {LABELS[name]} step {p.step}/{p.steps}: {p.psnr:.2f} dB, {p.elapsed:.1f} s", flush=True)

    device = resolve_device(args.device)
    rep = cfg_u.representation
    print(f"{LABELS[name]}: {rep.parameter_count} parameters, input width {rep.in_features}, "
          f"{recipe.steps} steps", flush=True)
    fit = fit_chunk(clip.frames, rep, recipe, device=device, seed=args.seed, amp=cfg_u.amp, progress=record)
    files = {}
    for tag, cfg in (("INVR-U", cfg_u), ("INVR-C", cfg_c)):
        encoder = Encoder(clip.info, cfg)
        path = outdir / f"{name}_{'u' if tag == 'INVR-U' else f'c_qp{cfg.qp}'}.invr"
        packet = encoder.pack(clip.frames, fit.state, 0, 0)
        with invrcodec.open(path, "w", header=encoder.header) as container:
            container.mux(packet)
        psnrs, decode_s = decode_invr_psnr(path, clip.frames)
        mean, std = mean_std(psnrs)
        files[tag] = {"file": str(path), "bytes": path.stat().st_size, "psnr_mean": mean, "psnr_std": std,
                      "psnr_chunk": pooled_psnr(psnrs),
                      "psnr_per_frame": [round(v, 4) for v in psnrs], "decode_s": round(decode_s, 2)}
        print(f"  {tag}: {files[tag]['bytes']} B, {mean:.2f} ± {std:.2f} dB", flush=True)
    return {
        "variant": name, "label": LABELS[name], "representation": repr(rep), "parameters": rep.parameter_count,
        "steps": fit.steps, "retries": fit.retries, "train_s": round(fit.seconds, 2), "final_psnr": fit.psnr,
        "curve": [{"step": s, "psnr": round(p, 4), "elapsed_s": round(t, 3)} for s, p, t in curve],
        **files,
    }


def plot(path: Path, clip: Clip, results: list[dict[str, object]], title: str, dpi: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for r in results:
        name = str(r["variant"])
        steps = [c["step"] for c in r["curve"]]  # type: ignore[union-attr]
        psnr = [c["psnr"] for c in r["curve"]]  # type: ignore[union-attr]
        secs = [c["elapsed_s"] for c in r["curve"]]  # type: ignore[union-attr]
        axes[0].plot(steps, psnr, color=COLORS[name], label=r["label"], lw=1.3, marker=".", ms=3)
        axes[1].plot(secs, psnr, color=COLORS[name], label=r["label"], lw=1.3, marker=".", ms=3)
    u_all = [v for r in results for v in r["INVR-U"]["psnr_per_frame"]]  # type: ignore[index]
    grid = np.linspace(min(u_all) - 1, max(u_all) + 1, 300)
    for r in results:
        name = str(r["variant"])
        axes[2].plot(grid, gaussian_kde(r["INVR-U"]["psnr_per_frame"], grid),  # type: ignore[index]
                     color=COLORS[name], label=r["label"], lw=1.3)
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("wall time (s, PSNR checks included)")
    axes[2].set_xlabel("RGB PSNR per frame (dB), uncompressed")
    axes[0].set_ylabel("chunk RGB PSNR (dB)")
    axes[1].set_ylabel("chunk RGB PSNR (dB)")
    axes[2].set_ylabel("density")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("clip", help="video file")
    ap.add_argument("--size", default="128", help="N: centre square crop, area-scaled to NxN; or 'native'")
    ap.add_argument("--frames", type=int, default=15, help="frames in the chunk (the paper's chunk: 15)")
    ap.add_argument("--seek", type=int, default=0, help="first frame of the chunk")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from " + ",".join(VARIANTS))
    ap.add_argument("--preset", default="ultrafast",
                    help="training recipe (ultrafast/fast/... ours; 'paper': one frame per step, lr 2e-5, 25k steps)")
    ap.add_argument("--steps", type=int, default=None, help="step budget (default: the preset's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    ap.add_argument("--hidden", type=int, default=None, help="hidden width (default: 128, the paper's)")
    ap.add_argument("--eval-every", type=int, default=None, help="full-chunk PSNR interval (default: preset's)")
    ap.add_argument("--qp", type=int, default=DEFAULT_QP, help="QP of the INVR-C file of each variant")
    ap.add_argument("--device", default="cpu", help="auto, cpu or cuda[:N]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's); 1 is far faster on a CPU shared with other jobs")
    ap.add_argument("--print-every", type=int, default=5, help="print every Nth PSNR check")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed 3-step warm-up (compile) of each variant")
    ap.add_argument("--dpi", type=int, default=90)
    ap.add_argument("--out", type=Path, default=Path("out/ablation"), help="output folder")
    args = ap.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    for v in args.variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r} (choose from {', '.join(VARIANTS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    clip = load_clip(args.clip, parse_size(args.size), args.frames, args.seek)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{clip.name}: frames {args.seek}-{args.seek + len(clip.frames) - 1}, "
          f"{clip.info.width}x{clip.info.height}", flush=True)
    results = [run_variant(clip, v, args, args.out) for v in args.variants]
    ranking = sorted(results, key=lambda r: -float(r["final_psnr"]))  # type: ignore[arg-type]
    report = {
        **report_head("ablation", args),
        "clip": {"name": clip.name, "path": clip.path, "width": clip.info.width, "height": clip.info.height,
                 "frames": len(clip.frames), "seek": args.seek},
        "ranking_final_psnr": [r["label"] for r in ranking],
        "wall_s": round(time.perf_counter() - t0, 1), "variants": results,
    }
    (args.out / "ablation.json").write_text(json.dumps(report, indent=1))
    title = (f"{clip.name} {clip.info.width}x{clip.info.height}, frames {args.seek}-"
             f"{args.seek + len(clip.frames) - 1}, preset {args.preset}, {results[0]['steps']} steps, "
             f"seed {args.seed}")
    png = args.out / "ablation.png"
    plot(png, clip, results, title, args.dpi)
    print("final chunk PSNR: " + ", ".join(f"{r['label']} {float(r['final_psnr']):.2f} dB"  # type: ignore[arg-type]
                                           for r in ranking))
    print(f"wrote {args.out / 'ablation.json'}, {png} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    run_tool("ablation", main)

"""Rate-aware training (issue 11, item 2): a prototype and its measurements.

    python tools/rate_aware.py check --out out/rate_aware/check.json     # bit estimate against DeepCABAC
    python tools/rate_aware.py rd --qp 30,36,42,46 --out out/rate_aware/rd.jsonl   # R-D, old against new

``check`` trains the first 45-frame chunk of each shared clip (128x128) with the default recipe and compares
:mod:`invrcodec.coding.ratemodel`'s estimate with the bytes ``weights.encode_weights`` really codes, per tensor and QP.

``rd`` codes the same chunk at each QP twice, each as a real one-chunk .invr file decoded with invrcodec and
scored in RGB PSNR: the default (trained once, coded at every QP with the encoder's staged refinement) and
rate-aware training at that QP (invrcodec.net.fit with a ratemodel.RateTarget: same steps; from ``--start`` of them
on the weights carry uniform noise of their coded step and the loss adds lambda * estimated bits, lambda =
c * step(qp)^2 per squared error summed over the chunk's samples).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.bd import bd_psnr, bd_rate
from evalkit.clips import SHARED_MEDIA, Clip, load_clip
from evalkit.report import fmt

import invrcodec
from invrcodec.net import fit
from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.metrics import rgb_psnr
from invrcodec.coding.ratemodel import DQ_KAPPA, RateTarget, coded_steps, estimate_bits, rate_target
from invrcodec.coding.weights import encode_weights, qp_plan

CLIPS = [str(SHARED_MEDIA / "carphone_pristine.mp4"), str(SHARED_MEDIA / "bigbuckbunny.mp4")]


def target(rep, qp: int, coder, c: float, start: float, kappa: float, noise: bool) -> RateTarget | None:
    """Rate-aware training at ``qp`` (lambda = c * step(qp)^2); c = 0 with noise: quantisation noise alone."""
    t = rate_target(rep, qp, coder, c if c > 0 else 1.0, 1.0 - start)
    if t is None:
        return None
    return replace(t, lam=t.lam if c > 0 else 0.0, kappa=kappa, noise=noise)


def config(clip: Clip, steps: int | None, preset: str = "fast") -> EncoderConfig:
    cfg = EncoderConfig.from_preset(preset, device="cpu", keyint=1, steps=steps)
    return Encoder(clip.info, cfg).config


def train(clip: Clip, cfg: EncoderConfig, rate: RateTarget | None) -> fit.FitResult:
    chunk = clip.frames[:cfg.representation.chunk_frames]
    recipe = replace(cfg.recipe, eval_every=cfg.recipe.steps)
    return fit.fit_chunk(chunk, cfg.representation, recipe, device=torch.device("cpu"), seed=cfg.seed, rate=rate)


def code_and_decode(clip: Clip, cfg: EncoderConfig, state: dict[str, np.ndarray], qp: int
                    ) -> tuple[int, float, float]:
    """File bytes, per-tensor payload bytes and decoded RGB PSNR of a one-chunk .invr file at ``qp``."""
    chunk = clip.frames[:cfg.representation.chunk_frames]
    enc = Encoder(replace(clip.info, frame_count=len(chunk)), replace(cfg, qp=qp))
    packet = enc.pack(chunk, state, 0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.invr"
        with invrcodec.open(path, "w", header=enc.header) as out:
            out.mux(packet)
        with invrcodec.open(path) as f:
            decoded = np.stack(list(f.decode()))
        size = path.stat().st_size
    psnr = rgb_psnr(decoded, chunk)  # pooled over the chunk's frames
    assert abs(psnr - packet.train_psnr) < 1e-6, (psnr, packet.train_psnr)  # the encoder's own estimate
    return size, packet.size, psnr


def cmd_check(args: argparse.Namespace) -> int:
    qps = [int(q) for q in args.qp.split(",")]
    rows = []
    for path in args.clips:
        clip = load_clip(path, 128, args.frames)
        cfg = config(clip, args.steps)
        t0 = time.perf_counter()
        f = train(clip, cfg, None)
        print(f"{clip.name}: trained {f.steps} steps in {time.perf_counter() - t0:.1f} s, {f.psnr:.2f} dB",
              flush=True)
        np.savez(Path(args.out).with_suffix(f".{clip.name}.npz"), **f.state)
        coder = Encoder(clip.info, cfg).header.coder
        rep = cfg.representation
        for qp in qps:
            tensors, _ = encode_weights(f.state, rep, coder, qp_plan(qp, rep))
            est = estimate_bits(f.state, coded_steps(rep, qp, coder), args.kappa)
            for (name, _), ct in zip(rep.tensor_shapes(), tensors):
                rows.append({"clip": clip.name, "qp": qp, "tensor": name, "real_bits": 8 * len(ct.data),
                             "est_bits": round(est[name], 1)})
            real = sum(8 * len(ct.data) for ct in tensors)
            print(f"  QP {qp}: real {real / 8:.0f} bytes, estimate {sum(est.values()) / 8:.0f} bytes", flush=True)
    real = np.array([r["real_bits"] for r in rows], float)
    est = np.array([r["est_bits"] for r in rows], float)
    big = real > 8 * 200  # tensors of over 200 bytes (the weights; biases cost a few dozen bytes each)
    ratio = est / real
    summary = {
        "tensors": len(rows), "pearson_log": float(np.corrcoef(np.log(real), np.log(est))[0, 1]),
        "pearson": float(np.corrcoef(real, est)[0, 1]),
        "ratio_mean": float(ratio.mean()), "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max()),
        "ratio_big_mean": float(ratio[big].mean()), "ratio_big_min": float(ratio[big].min()),
        "ratio_big_max": float(ratio[big].max()),
        "total_ratio": float(est.sum() / real.sum()), "kappa": args.kappa,
    }
    print(json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


def cmd_rd(args: argparse.Namespace) -> int:
    qps = [int(q) for q in args.qp.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cs = [] if args.c == "none" else [float(c) for c in args.c.split(",")]

    def emit(row: dict[str, object]) -> None:
        print(json.dumps(row), flush=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    for path in args.clips:
        clip = load_clip(path, 128, args.frames)
        cfg = config(clip, args.steps)
        coder = Encoder(clip.info, cfg).header.coder
        rep = cfg.representation
        if not args.no_baseline:
            t0 = time.perf_counter()
            f = train(clip, cfg, None)
            secs = time.perf_counter() - t0
            for qp in qps:
                size, payload, psnr = code_and_decode(clip, cfg, f.state, qp)
                emit({"clip": clip.name, "label": "default", "qp": qp, "bytes": size, "payload": payload,
                      "psnr": round(psnr, 3), "float_psnr": round(f.psnr, 3), "train_s": round(secs, 1)})
        for c in cs:
            for qp in qps:
                t0 = time.perf_counter()
                f = train(clip, cfg, target(rep, qp, coder, c, args.start, args.kappa, not args.no_noise))
                secs = time.perf_counter() - t0
                size, payload, psnr = code_and_decode(clip, cfg, f.state, qp)
                emit({"clip": clip.name, "label": f"rate c={c:g} start={args.start:g}"
                      + (" no-noise" if args.no_noise else ""), "qp": qp, "bytes": size, "payload": payload,
                      "psnr": round(psnr, 3), "float_psnr": round(f.psnr, 3), "train_s": round(secs, 1)})
    return 0


def cmd_time(args: argparse.Namespace) -> int:
    """Milliseconds per training step with and without the rate term (noise and bits on every step),
    interleaved in one process so that the machine's drift hits both alike."""
    clip = load_clip(args.clips[0], 128, args.frames)
    cfg = config(clip, args.steps)
    coder = Encoder(clip.info, cfg).header.coder
    rep = cfg.representation
    rate = target(rep, 38, coder, 1e5, 0.0, args.kappa, True)
    train(clip, replace(cfg, recipe=replace(cfg.recipe, steps=20)), rate)  # compile and warm up
    times: dict[str, list[float]] = {"default": [], "rate": []}
    for _ in range(args.repeat):
        for label, r in (("default", None), ("rate", rate)):
            t0 = time.perf_counter()
            train(clip, cfg, r)
            times[label].append(1000 * (time.perf_counter() - t0) / cfg.recipe.steps)
    summary = {k: [round(v, 2) for v in vs] for k, vs in times.items()}
    summary["overhead"] = round(sum(times["rate"]) / sum(times["default"]) - 1, 4)  # type: ignore[assignment]
    print(json.dumps(summary))
    return 0


def cmd_bd(args: argparse.Namespace) -> int:
    """Per clip: each label's points and its BD-rate / BD-PSNR against the ``default`` label."""
    rows = [json.loads(line) for f in args.files for line in Path(f).read_text().splitlines() if line.strip()]
    for clip in dict.fromkeys(r["clip"] for r in rows):
        mine = [r for r in rows if r["clip"] == clip]
        labels = list(dict.fromkeys(r["label"] for r in mine))
        base = sorted((r for r in mine if r["label"] == "default"), key=lambda r: r["qp"])
        print(f"## {clip}")
        for label in labels:
            pts = sorted((r for r in mine if r["label"] == label), key=lambda r: r["qp"])
            text = " | ".join(f"QP {r['qp']}: {r['bytes']} B, {r['psnr']:.2f} dB" for r in pts)
            bd = ""
            if label != "default" and len(pts) >= 2:
                rate = bd_rate([r["bytes"] for r in base], [r["psnr"] for r in base],
                                  [r["bytes"] for r in pts], [r["psnr"] for r in pts])
                dpsnr = bd_psnr([r["bytes"] for r in base], [r["psnr"] for r in base],
                                   [r["bytes"] for r in pts], [r["psnr"] for r in pts])
                bd = f"  BD-rate {fmt(rate, 1, '%')}, BD-PSNR {fmt(dpsnr, 3, ' dB')}"
            print(f"{label}: {text}{bd}")
    return 0


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("check", "rd", "time"):
        p = sub.add_parser(name)
        p.add_argument("--clips", nargs="*", default=CLIPS)
        p.add_argument("--frames", type=int, default=45)
        p.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's)")
        p.add_argument("--kappa", type=float, default=DQ_KAPPA)
        p.add_argument("--out", required=True)
    sub.choices["check"].add_argument("--qp", default="26,30,34,38,42,46")
    sub.choices["time"].add_argument("--repeat", type=int, default=2)
    rd = sub.choices["rd"]
    rd.add_argument("--qp", default="30,36,42,46")
    rd.add_argument("--c", default="30000", help="lambda = c * step(qp)^2 per sample; comma list to sweep")
    rd.add_argument("--start", type=float, default=0.7, help="fraction of the steps before noise and rate")
    rd.add_argument("--no-noise", action="store_true")
    rd.add_argument("--no-baseline", action="store_true")
    bd = sub.add_parser("bd", help="BD-rate of each label against the default, per clip")
    bd.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    return {"check": cmd_check, "rd": cmd_rd, "time": cmd_time, "bd": cmd_bd}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

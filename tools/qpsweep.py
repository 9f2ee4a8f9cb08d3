"""Sensitivity of a trained chunk to the quantisation step of each tensor type.

Trains one chunk, then quantises one tensor type at a time (the others stay float) over a range of QPs and
records bytes and decoded PSNR; also the full per-type plan at several user QPs, with plain and dependent
quantisation. The per-type QP offsets of invrcodec.coding.weights.qp_plan come from this table.

    python tools/qpsweep.py --clip ../shared/media/carphone_pristine.mp4 --out docs/qpsweep.json
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import torch

from invrcodec.coding import deepcabac
from invrcodec.codec.decoder import build_network, render
from invrcodec.net.fit import fit_chunk
from invrcodec.media.pyav import VideoReader
from invrcodec.metrics import rgb_psnr
from invrcodec.codec.presets import PRESETS, VARIANTS
from invrcodec.types import CoderKind, CoderParams, TensorRole
from invrcodec.coding.weights import QP_ORIGIN, encode_weights, qp_plan


@click.command()
@click.option("--clip", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--size", default=128, show_default=True)
@click.option("--frames", default=15, show_default=True)
@click.option("--steps", default=1000, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="docs/qpsweep.json", show_default=True)
def main(clip: str, size: int, frames: int, steps: int, out: str) -> None:
    with VideoReader(clip, frames=frames, crop_square=True, scale=(size, size)) as r:
        video = np.stack(list(r))
    rep = replace(VARIANTS["invr"], chunk_frames=frames)
    dev = torch.device("cpu")
    t0 = time.perf_counter()
    fit = fit_chunk(video, rep, replace(PRESETS["fast"], steps=steps), device=dev)
    sizes = (len(video), video.shape[1], video.shape[2])

    def psnr_of(state: dict[str, np.ndarray]) -> float:
        return rgb_psnr(render(build_network(rep, state, dev), sizes), video)

    float_psnr = psnr_of(fit.state)
    rows = []
    for role in TensorRole:  # one tensor type at a time quantised, the others kept as trained
        tname, of_role = role.value, set(rep.tensor_names(role))
        for qp in range(-60, -19, 4):
            state = dict(fit.state)
            nbytes = 0
            for name, w in fit.state.items():
                if name in of_role:
                    levels = deepcabac.quantize(w, qp, 2, False, 10)
                    nbytes += len(deepcabac.encode_levels(levels, False, 10))
                    state[name] = deepcabac.dequantize(levels, qp, 2)
            rows.append({"type": tname, "qp": qp, "step": deepcabac.step_size(qp, 2), "bytes": nbytes,
                         "psnr": psnr_of(state), "loss_db": float_psnr - psnr_of(state)})
            click.echo(f"{tname:14s} qp {qp:4d} bytes {nbytes:7d} loss {rows[-1]['loss_db']:.3f} dB")
    plans = []
    for dq in (False, True):
        coder = CoderParams(CoderKind.DEEPCABAC, 2, dq, 10, deepcabac.version())
        for user_qp in range(26, 51, 2):
            tensors, recon = encode_weights(fit.state, rep, coder, qp_plan(user_qp, rep))
            nbytes = sum(len(t.data) for t in tensors)
            plans.append({"qp": user_qp, "dq": dq, "bytes": nbytes, "psnr": psnr_of(recon)})
            click.echo(f"plan qp {user_qp} dq {int(dq)}: {nbytes} bytes, {plans[-1]['psnr']:.2f} dB")
    raw = 4 * rep.parameter_count
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({
        "clip": Path(clip).name, "size": size, "frames": frames, "steps": steps, "float_psnr": float_psnr,
        "float32_bytes": raw, "qp_origin": QP_ORIGIN, "per_type": rows, "plans": plans,
        "seconds": time.perf_counter() - t0}, indent=1))
    click.echo(f"float PSNR {float_psnr:.2f} dB; wrote {out}")


if __name__ == "__main__":
    main()

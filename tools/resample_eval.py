"""What an INVR network gives between its samples (issue 13; docs/results.md "Between the samples").

For each clip and each encoding (the paper's 64,64,32 and a band-limited one whose highest frequency stays
below every axis' Nyquist rate), three measurements through real .invr files and ``invrcodec.open().decode``:

(a) **2x and back**: decode at twice the size, area-downscale to the stored size, PSNR against the 1x decode
    (a network that is smooth between its pixels gives the 1x decode back; an aliasing one does not), and
    the 2x decode against a bicubic upscale of the 1x decode. Measured on the encode of (c).
(b) **Super-resolution**: encode the clip area-downscaled to half size, decode at full size, PSNR against
    the full-size source, next to bicubic and Lanczos upscales (libswscale) of the half-size decode.
(c) **Frames between frames**: encode every other frame (at half the frame rate), decode at the full rate,
    PSNR of the rendered in-between frames against the real frames left out, next to repeating the previous
    decoded frame and averaging the two neighbours; instants inside a chunk and between two chunks apart,
    the latter for every ``--chunk-boundary`` policy.

    python tools/resample_eval.py --out docs/resample.json      # both shared clips, 128x128, preset fast
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.clips import SHARED_MEDIA, load_clip  # noqa: E402
from evalkit.invr import encode_with_encoder  # noqa: E402
from evalkit.report import command_line, machine  # noqa: E402

import invrcodec  # noqa: E402
from invrcodec.codec.encoder import EncoderConfig  # noqa: E402
from invrcodec.net.fit import rgb_psnr  # noqa: E402
from invrcodec.codec.presets import band_limited_dims  # noqa: E402
from invrcodec.codec.sampling import BOUNDARIES  # noqa: E402

CLIPS = ("carphone_pristine.mp4", "bigbuckbunny.mp4")
SIGMA = 1.4  # the paper's, every preset's


def resize(frames: np.ndarray, width: int, height: int, how: str) -> np.ndarray:
    """RGB frames resized by libswscale (PyAV): ``AREA``, ``BICUBIC`` or ``LANCZOS``."""
    out = [av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
           .reformat(width=width, height=height, interpolation=how).to_ndarray() for f in frames]
    return np.stack(out)


def mean_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([rgb_psnr(x, y) for x, y in zip(a, b)]))


def decode(path: Path, **kwargs: object) -> np.ndarray:
    with invrcodec.open(path) as f:
        return np.stack(list(f.decode(**kwargs)))  # type: ignore[arg-type]


REUSE = False  # --reuse: measure the .invr files already in --work instead of encoding again


def encode(frames: np.ndarray, info: object, cfg: EncoderConfig, path: Path,
           rate: Fraction | None = None) -> float | None:
    if REUSE and path.exists() and path.stat().st_size:
        return None
    info = replace(info, frame_count=len(frames))  # type: ignore[type-var]
    if rate is not None:
        info = replace(info, frame_rate=rate, time_base=1 / rate)  # type: ignore[type-var]
    return encode_with_encoder(frames, info, cfg, path)  # type: ignore[arg-type]


def measure_a(frames: np.ndarray, path: Path) -> dict[str, float]:
    h, w = frames.shape[1:3]
    one = decode(path)
    two = decode(path, scale=2)
    back = resize(two, w, h, "AREA")
    return {
        "decode_1x_vs_source": mean_psnr(one, frames),
        "area_down_of_2x_vs_1x": mean_psnr(back, one),
        "area_down_of_2x_vs_source": mean_psnr(back, frames),
        "decode_2x_vs_bicubic_up_of_1x": mean_psnr(two, resize(one, 2 * w, 2 * h, "BICUBIC")),
    }


def measure_b(frames: np.ndarray, half_frames: np.ndarray, half_path: Path) -> dict[str, float]:
    h, w = frames.shape[1:3]
    half = decode(half_path)
    return {
        "half_decode_vs_half_source": mean_psnr(half, half_frames),
        "invr_2x_vs_source": mean_psnr(decode(half_path, size=(w, h)), frames),
        "bicubic_vs_source": mean_psnr(resize(half, w, h, "BICUBIC"), frames),
        "lanczos_vs_source": mean_psnr(resize(half, w, h, "LANCZOS"), frames),
        "bicubic_of_half_source_vs_source": mean_psnr(resize(half_frames, w, h, "BICUBIC"), frames),
    }


def measure_c(frames: np.ndarray, path: Path, rate: Fraction, chunk: int) -> dict[str, object]:
    """``frames`` are all source frames; ``path`` holds the even ones at half ``rate``."""
    stored = decode(path)  # decoded even frames
    kept = len(stored)
    odd = frames[1::2][:kept - 1]  # real frames between two stored ones (the last odd frame has no right side)
    inside = [m for m in range(kept - 1) if (m + 1) % chunk != 0]
    between = [m for m in range(kept - 1) if (m + 1) % chunk == 0]
    hold = stored[:kept - 1]
    average = ((stored[:-1].astype(np.uint16) + stored[1:]) // 2).astype(np.uint8)
    res: dict[str, object] = {"stored_decode_vs_source": mean_psnr(stored, frames[0::2][:kept]),
                              "in_between_frames_inside_chunks": len(inside),
                              "in_between_frames_between_chunks": len(between)}
    for name, base in (("repeat_previous", hold), ("average_neighbours", average)):
        res[f"{name}_inside"] = mean_psnr(base[inside], odd[inside])
        if between:
            res[f"{name}_between"] = mean_psnr(base[between], odd[between])
    for boundary in BOUNDARIES:
        full = decode(path, rate=rate, boundary=boundary)
        mid = full[1::2][:kept - 1]
        if boundary == "blend":
            res["invr_inside"] = mean_psnr(mid[inside], odd[inside])
            assert np.array_equal(full[0::2], stored)
        if between:
            res[f"invr_{boundary}_between"] = mean_psnr(mid[between], odd[between])
    return res


@click.command()
@click.option("--clip", "clips", multiple=True, help="Clip files (default: the two shared clips).")
@click.option("--size", default=128, show_default=True, help="Centre square crop, area-scaled to this.")
@click.option("--frames", default=30, show_default=True,
              help="Stored frames of (a) and (c): every other frame of twice as many.")
@click.option("--half-frames", default=15, show_default=True, help="Frames of (b).")
@click.option("--preset", default="fast", show_default=True)
@click.option("--steps", default=None, type=int, help="Override the preset's steps (smoke runs).")
@click.option("--chunk-frames", default=15, show_default=True)
@click.option("--encoding", "which", multiple=True, type=click.Choice(["paper", "band-limited"]),
              help="Encodings to measure (default: both).")
@click.option("--reuse", is_flag=True, help="Measure the encodes already in --work (same options) again.")
@click.option("--threads", default=0, show_default=True, help="torch CPU threads (0: torch's default).")
@click.option("--work", default="out/resample", show_default=True, type=click.Path(file_okay=False))
@click.option("--out", default="docs/resample.json", show_default=True, type=click.Path(dir_okay=False))
def main(clips: tuple[str, ...], size: int, frames: int, half_frames: int, preset: str, steps: int | None,
         chunk_frames: int, which: tuple[str, ...], reuse: bool, threads: int, work: str, out: str) -> None:
    """Measure (a), (b), (c) on each clip with the paper's encoding and a band-limited one.

    (a) and (c) share one encode: every other frame of 2 x FRAMES source frames, at half the frame rate.
    """
    global REUSE
    REUSE = reuse
    if threads:
        torch.set_num_threads(threads)
    work_dir = Path(work)
    paths = clips or tuple(str(SHARED_MEDIA / c) for c in CLIPS)
    half = size // 2
    encodings = {"paper": ((64, 64, 32), (64, 64, 32)),
                 "band-limited": (band_limited_dims(size, size, chunk_frames, SIGMA),
                                  band_limited_dims(half, half, chunk_frames, SIGMA))}
    encodings = {k: v for k, v in encodings.items() if not which or k in which}
    results: dict[str, object] = {"machine": machine(), "command": command_line(), "preset": preset,
                                  "steps": steps, "size": size, "frames": frames, "half_frames": half_frames,
                                  "chunk_frames": chunk_frames, "encodings": encodings, "clips": {}}
    t0 = time.perf_counter()
    for clip_path in paths:
        full = load_clip(clip_path, size, 2 * frames)
        half_clip = load_clip(clip_path, half, half_frames)
        rate = Fraction(full.info.frame_rate)
        per: dict[str, object] = {}
        for name, (dims, half_dims) in encodings.items():
            row: dict[str, object] = {"enc_dims": dims, "half_enc_dims": half_dims}
            cfg = EncoderConfig.from_preset(preset, enc_dims=dims, chunk_frames=chunk_frames, steps=steps,
                                            device="cpu")
            even = work_dir / f"{full.name}-{name}-even.invr"
            row["encode_s"] = encode(full.frames[0::2], full.info, cfg, even, rate / 2)
            row["a"] = measure_a(full.frames[0::2], even)
            row["c"] = measure_c(full.frames, even, rate, chunk_frames)
            hcfg = EncoderConfig.from_preset(preset, enc_dims=half_dims, chunk_frames=chunk_frames, steps=steps,
                                             device="cpu")
            hpath = work_dir / f"{full.name}-{name}-half.invr"
            row["half_encode_s"] = encode(half_clip.frames, half_clip.info, hcfg, hpath)
            row["b"] = measure_b(full.frames[:half_frames], half_clip.frames, hpath)
            per[name] = row
            print(f"{full.name} {name}: {json.dumps(row)}", flush=True)
        results["clips"][full.name] = per  # type: ignore[index]
    results["seconds"] = time.perf_counter() - t0
    results["torch_threads"] = torch.get_num_threads()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""What tools/rd.py writes: results.json (per-frame PSNR included, so that --replot recomputes everything),
results.csv, table.md (Table 1 layout, BD-rates, all points) and the plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from evalkit.rdplots import plots
from evalkit.rdpoints import Point, bd_table, table1_points
from evalkit.report import fmt


def _span(r: object, digits: int) -> str:
    return "none" if r is None else f"{r[0]:.{digits}f}–{r[1]:.{digits}f}"  # type: ignore[index]


def _bd_lines(clips: list[dict[str, object]], kind: str) -> list[str]:
    lines = [("| clip | test | anchor | BD-rate pchip | BD-rate cubic | over PSNR (dB) | BD-PSNR pchip "
             "| over rate (kbit/s) |"), "|---|---|---|---|---|---|---|---|"]
    for c in clips:
        for r in c["bd"]:  # type: ignore[union-attr]
            if r.get("kind", "baseline") != kind:
                continue
            lines.append(f"| {c['name']} | {r['test']} | {r['anchor']} | {fmt(r['bd_rate_pchip'], 1, ' %')} "
                         f"| {fmt(r['bd_rate_cubic'], 1, ' %')} | {_span(r['psnr_overlap_db'], 2)} "
                         f"| {fmt(r['bd_psnr_pchip'], 2, ' dB')} | {_span(r['rate_overlap_kbps'], 0)} |")
    return lines


def markdown(report: dict[str, object], clips: list[dict[str, object]]) -> str:
    m = report["machine"]
    lines = [(f"Measured {m['date']} on {m['cpu']}, {m['cpu_count']} cores, "  # type: ignore[index]
             f"{m['torch_threads']} torch thread(s); command: `{report['command']}`"), ""]  # type: ignore[index]
    for c in clips:
        for name, settings in (c.get("invr_curves") or {}).items():  # type: ignore[union-attr]
            lines.append(f"- {c['name']}, {name}: `{settings}`")
        caps = c.get("roundtrip_psnr") or {}
        if caps:
            lines.append(f"- {c['name']}: RGB -> YUV -> RGB without coding (the ceiling of a baseline): "
                         + ", ".join(f"{k} {v:.2f} dB" for k, v in caps.items()))  # type: ignore[union-attr]
    if lines[-1]:
        lines.append("")
    names = [c["name"] for c in clips]
    order: list[str] = []
    for c in clips:
        order += [k for k in c["table1"] if k not in order]  # type: ignore[union-attr]
    lines += [("Table 1 layout: each INVR-C curve at the reference QP, INVR-U, and each baseline at its point "
              "closest in size to the first INVR-C curve's. PSNR is RGB, mean ± std over frames; sizes in KB "
              "(1000 bytes). Baselines are labelled with the chroma sampling they were coded in; 4:4:4 is the "
              "headline for an RGB codec, 4:2:0 loses colour detail before any coding."), ""]
    head = "| | | " + " | ".join(f"{n} PSNR (dB)" for n in names) + " | | " + \
        " | ".join(f"{n} size (KB)" for n in names) + " |"
    lines += [head, "|" + "---|" * (3 + 2 * len(names))]
    for i, key in enumerate(order):
        cells_p, cells_s = [], []
        for c in clips:
            p = c["table1"].get(key)  # type: ignore[union-attr]
            cells_p.append(f"{p['psnr_mean']:.2f} ± {p['psnr_std']:.2f}" if p else "–")
            cells_s.append(f"{p['bytes'] / 1000:.1f}" if p else "–")
        lines.append(f"| {'PSNR' if i == 0 else ''} | {key} | " + " | ".join(cells_p) +
                     f" | {'File size' if i == 0 else ''} | " + " | ".join(cells_s) + " |")
    lines.append("| | | " + " | ".join("" for _ in names) + " | | " +
                 " | ".join(f"{c['raw_bytes'] / 1000:.1f} (raw RGB)" for c in clips) + " |")
    probed = {(p["codec"], p.get("pix_fmt"), p.get("profile")) for c in clips  # type: ignore[union-attr]
              for p in c["points"] if p.get("pix_fmt")}  # type: ignore[union-attr]
    if probed:
        lines += ["", "Baseline streams as decoded: " + "; ".join(
            f"{codec}: {fmt_}, profile {profile or 'n/a'}" for codec, fmt_, profile in sorted(probed)) + "."]
    common = ("Bjontegaard on mean RGB PSNR vs kbit/s. BD-rate: the test's mean log-rate difference at equal "
              "PSNR over the PSNR range where both curves exist (positive: the test needs that much more rate); "
              "BD-PSNR: mean PSNR difference at equal rate over the common rate range (negative: the test is "
              "worse). n/a: the ranges do not overlap. Curves are reduced to their Pareto points (rate control "
              "can return the same or a worse point for a higher target).")
    if any(r.get("kind") == "invr" for c in clips for r in c["bd"]):  # type: ignore[union-attr]
        lines += ["", "BD-rate of each INVR-C curve against each later one (anchor). " + common, ""]
        lines += _bd_lines(clips, "invr")
    lines += ["", "BD-rate of each INVR-C curve against each baseline (anchor), 4:4:4 first. " + common, ""]
    lines += _bd_lines(clips, "baseline")
    lines += ["", ("All points (bytes: .invr file size for INVR, raw elementary-stream file size for the "
              "baselines; encode time for INVR is the shared training time plus this point's coding when the "
              "curve's chunks are all key chunks, else the point's own encode; wall times on a shared "
              "machine)."), "",
              "| clip | codec | curve | setting | bytes | kbit/s | bpp | PSNR (dB) | min | encode s | decode s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in clips:
        for r in c["points"]:  # type: ignore[union-attr]
            lines.append(f"| {c['name']} | {r['codec']} | {r['curve']} | {r['setting']} | {r['bytes']} "
                         f"| {r['kbps']:.1f} | {r['bpp']:.4f} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} "
                         f"| {r['psnr_min']:.2f} | {r['encode_s']:.1f} | {r['decode_s']:.1f} |")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, report: dict[str, object], measured: list[tuple[dict[str, object], list[Point]]],
                  ref_qp: int, tag: str, dpi: int) -> list[Path]:
    """BD-rates, Table 1 choice, JSON, CSV, markdown and plots from measured points."""
    clip_results = []
    clips_json = []
    for meta, points in measured:
        chosen = table1_points(points, ref_qp)
        clip_results.append((meta, points, chosen))
        clips_json.append({
            **meta,
            # Per-frame PSNR at full precision: --replot recomputes every mean and BD figure from these.
            "points": [dict(p.row(), psnr_per_frame=[float(v) for v in p.psnr]) for p in points],
            "bd": bd_table(points),
            "table1": {k: p.row() for k, p in chosen.items()},
        })
    report = {**report, "clips": clips_json}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        header_written = False
        for meta, points, _ in clip_results:
            for p in points:
                row = p.row()
                if not header_written:
                    writer.writerow(["clip", *row])
                    header_written = True
                writer.writerow([meta["name"], *row.values()])
    (out / "table.md").write_text(markdown(report, clips_json))
    written = [out / "results.json", out / "results.csv", out / "table.md"]
    if any(points for _, points, _ in clip_results):
        written += [Path(w) for w in plots(out, clip_results, tag, dpi)]
    return written

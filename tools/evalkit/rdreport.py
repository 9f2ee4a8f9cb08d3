"""What tools/rd.py writes: results.json (per-frame PSNR included, so that --replot recomputes everything),
results.csv, table.md (Table 1 layout, BD-rates, the whole-range figures, all points), range.csv and
behind.csv (the whole-range figures) and the plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from evalkit.rdplots import plots
from evalkit.rdpoints import BEHIND_BPP, FIXED_PSNR_DB, Point, bd_table, range_table, table1_points, top_psnr
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


def _range_text(r: list[float], unit: str) -> str:
    """A range as the tables write it, e.g. ``30–42 dB``."""
    return f"{r[0]:g}–{r[1]:g} {unit}"


def _range_rows(clip: dict[str, object]) -> list[dict[str, object]]:
    """A clip's whole-range rows, one per INVR-C curve and baseline (none in an older rd.py's report)."""
    return (clip.get("whole_range") or {}).get("rows", [])  # type: ignore[union-attr,no-any-return]


def _fixed_lines(clips: list[dict[str, object]], psnr: str, bpp: str) -> list[str]:
    """BD-rate over the fixed PSNR range and mean dB behind over the bpp range, per INVR-C curve and
    baseline."""
    lines = [f"| clip | test | anchor | BD-rate pchip over {psnr} | mean dB behind at equal rate, {bpp} |",
             "|---|---|---|---|---|"]
    for c in clips:
        for r in _range_rows(c):
            bd = r["bd_rate_fixed_pchip"]
            bd_text = f"does not reach {psnr}" if bd is None else fmt(bd, 1, " %")  # type: ignore[arg-type]
            lines.append(f"| {c['name']} | {r['test']} | {r['anchor']} | {bd_text} "
                         f"| {fmt(r['mean_db_behind'], 2, ' dB')} |")  # type: ignore[arg-type]
    return lines


def _top_lines(clips: list[dict[str, object]]) -> list[str]:
    """Each curve's highest PSNR and where it reaches it."""
    lines = ["| clip | curve | top PSNR (dB) | at kbit/s | at bpp | setting |", "|---|---|---|---|---|---|"]
    for c in clips:
        for name, t in (c.get("top_psnr") or {}).items():  # type: ignore[union-attr]
            lines.append(f"| {c['name']} | {name} | {t['psnr']:.2f} | {t['kbps']:.1f} | {t['bpp']:.4f} "
                         f"| {t['setting']} |")
    return lines


def _behind_cells(b: dict[str, object]) -> str:
    """One INVR-C point's cells: bpp, kbit/s, its PSNR, the baseline's PSNR at its rate, the difference."""
    if b["anchor_psnr"] is None:
        at, diff = "outside the baseline's rates", "–"
    else:
        at, diff = f"{b['anchor_psnr']:.2f}", f"{b['db_behind']:+.2f}"
    return f"{b['bpp']:.4f} | {b['kbps']:.1f} | {b['psnr']:.2f} | {at} | {diff}"


def _behind_lines(clips: list[dict[str, object]], anchor: str) -> list[str]:
    """One baseline's table of dB behind at equal rate: a row per INVR-C point."""
    lines = [f"| clip | INVR curve | setting | bpp | kbit/s | INVR PSNR (dB) | {anchor} PSNR (dB) "
             "| dB behind |", "|---|---|---|---|---|---|---|---|"]
    for c in clips:
        for r in _range_rows(c):
            if r["anchor"] == anchor:
                lines += [f"| {c['name']} | {r['test']} | {b['setting']} | {_behind_cells(b)} |"
                          for b in r["behind"]]  # type: ignore[attr-defined]
    return lines


def whole_range_markdown(clips: list[dict[str, object]]) -> list[str]:
    """The whole-range section: what the common-range BD-rate hides when INVR's curve stops far below a
    baseline's top."""
    ranges = [c["whole_range"] for c in clips if c.get("whole_range")]
    if not ranges:
        return []
    psnr = _range_text(ranges[0]["psnr_range_db"], "dB")  # type: ignore[index]
    bpp = _range_text(ranges[0]["bpp_range"], "bpp")  # type: ignore[index]
    anchors = list(dict.fromkeys(r["anchor"] for c in clips for r in _range_rows(c)))
    lines = ["", (f"The whole range. BD-rate (PCHIP) of each INVR-C curve against each baseline over the "
                  f"fixed PSNR range {psnr} rather than the range both curves reach (\"does not reach\": a "
                  f"curve's Pareto points do not span it); and the mean, over the INVR-C points from {bpp}, "
                  f"of how many dB the baseline is ahead at the same rate (its PSNR interpolated by PCHIP in "
                  f"log-rate; positive: INVR is behind)."), ""]
    lines += _fixed_lines(clips, psnr, bpp)
    lines += ["", "The highest mean PSNR each curve reaches.", ""] + _top_lines(clips)
    for anchor in anchors:
        lines += ["", f"dB behind {anchor} at equal rate: at each INVR-C point's rate, {anchor}'s PSNR "
                  f"(PCHIP in log-rate on its Pareto points; no extrapolation) minus INVR's.", ""]
        lines += _behind_lines(clips, anchor)
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
    lines += whole_range_markdown(clips)
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


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    """Rows of like dicts as CSV: the first row's keys are the header (an empty file without rows)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        for i, row in enumerate(rows):
            if i == 0:
                writer.writerow(row)
            writer.writerow(row.values())


def range_csv_rows(clips: list[dict[str, object]]) -> list[dict[str, object]]:
    """range.csv: one row per clip, INVR-C curve and baseline, the whole-range figures without the points."""
    out = []
    for c in clips:
        w: dict[str, list[float]] = c["whole_range"]  # type: ignore[assignment]
        (psnr_lo, psnr_hi), (bpp_lo, bpp_hi) = w["psnr_range_db"], w["bpp_range"]
        out += [{"clip": c["name"], "test": r["test"], "anchor": r["anchor"], "psnr_lo": psnr_lo,
                 "psnr_hi": psnr_hi, "bd_rate_fixed_pchip": r["bd_rate_fixed_pchip"], "bpp_lo": bpp_lo,
                 "bpp_hi": bpp_hi, "mean_db_behind": r["mean_db_behind"]} for r in _range_rows(c)]
    return out


def behind_csv_rows(clips: list[dict[str, object]]) -> list[dict[str, object]]:
    """behind.csv: one row per clip, INVR-C point and baseline: the point and the baseline's PSNR at its
    rate."""
    return [{"clip": c["name"], "test": r["test"], "anchor": r["anchor"], **b}  # type: ignore[dict-item]
            for c in clips for r in _range_rows(c) for b in r["behind"]]  # type: ignore[attr-defined]


def write_outputs(out: Path, report: dict[str, object], measured: list[tuple[dict[str, object], list[Point]]],
                  ref_qp: int, tag: str, dpi: int, psnr_range: tuple[float, float] = FIXED_PSNR_DB,
                  bpp_range: tuple[float, float] = BEHIND_BPP) -> list[Path]:
    """BD-rates, whole-range figures (BD-rate over ``psnr_range``, dB behind at equal rate and its mean over
    ``bpp_range``, top PSNRs), Table 1 choice, JSON, CSV, markdown and plots from measured points."""
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
            "whole_range": range_table(points, psnr_range, bpp_range),
            "top_psnr": top_psnr(points),
            "table1": {k: p.row() for k, p in chosen.items()},
        })
    report = {**report, "clips": clips_json}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1))
    write_csv(out / "results.csv", [{"clip": meta["name"], **p.row()} for meta, points, _ in clip_results
                                    for p in points])
    write_csv(out / "range.csv", range_csv_rows(clips_json))
    write_csv(out / "behind.csv", behind_csv_rows(clips_json))
    (out / "table.md").write_text(markdown(report, clips_json))
    written = [out / "results.json", out / "results.csv", out / "range.csv", out / "behind.csv",
               out / "table.md"]
    if any(points for _, points, _ in clip_results):
        written += [Path(w) for w in plots(out, clip_results, tag, dpi)]
    return written

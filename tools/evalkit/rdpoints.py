"""R-D points and curves (tools/rd.py): one operating point of one codec on one clip, its curve, and what the
curves give: BD-rates of every INVR-C curve against the others and the baselines, the whole-range figures
against the baselines (BD-rate over a fixed PSNR range, dB behind at equal rate, each curve's top PSNR), and
Table 1's choice."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.bd import bd_psnr, bd_rate, bd_rate_fixed, db_behind, overlap, pareto

FIXED_PSNR_DB = (30.0, 42.0)  # the fixed range of the whole-range BD-rate
BEHIND_BPP = (0.1, 0.5)  # the INVR points whose mean "dB behind at equal rate" is the figure of merit


@dataclass
class Point:
    """One operating point of one codec on one clip."""

    codec: str  # "INVR-C", "INVR-U", "MPEG-1 4:2:0", "H.264 4:4:4", ...
    curve: str  # the R-D curve it belongs to, e.g. "INVR-C default" or "H.264 4:4:4"
    setting: str  # "qp=38", "target=120 kbit/s", ...
    file: str
    bytes: int
    bytes_kind: str
    frames: int
    seconds: float  # clip duration
    width: int
    height: int
    psnr: list[float]
    encode_s: float
    decode_s: float
    params: int | None = None  # network parameters per chunk (INVR)
    pix_fmt: str | None = None  # baselines: the decoded stream's pixel format
    profile: str | None = None  # baselines: the decoded stream's profile

    @property
    def kbps(self) -> float:
        return self.bytes * 8 / 1000 / self.seconds

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / (self.frames * self.width * self.height)

    @property
    def psnr_mean(self) -> float:
        return float(np.mean(self.psnr))

    @property
    def psnr_std(self) -> float:
        return float(np.std(self.psnr))

    def row(self) -> dict[str, object]:
        return {
            "codec": self.codec, "curve": self.curve, "setting": self.setting, "bytes": self.bytes,
            "bytes_kind": self.bytes_kind, "kbps": round(self.kbps, 3), "bpp": round(self.bpp, 5),
            "psnr_mean": round(self.psnr_mean, 4), "psnr_std": round(self.psnr_std, 4),
            "psnr_min": round(min(self.psnr), 4), "frames": self.frames, "width": self.width,
            "height": self.height, "encode_s": round(self.encode_s, 2), "decode_s": round(self.decode_s, 2),
            "params": self.params, "pix_fmt": self.pix_fmt, "profile": self.profile, "file": self.file,
        }


def point_from_row(row: dict[str, object], seconds: float) -> Point:
    return Point(str(row["codec"]), str(row["curve"]), str(row["setting"]), str(row["file"]),
                 int(row["bytes"]), str(row["bytes_kind"]), int(row["frames"]), seconds,  # type: ignore[arg-type]
                 int(row["width"]), int(row["height"]), list(row["psnr_per_frame"]),  # type: ignore[arg-type]
                 float(row["encode_s"]), float(row["decode_s"]), row.get("params"),  # type: ignore[arg-type]
                 row.get("pix_fmt"), row.get("profile"))  # type: ignore[arg-type]


def curves(points: list[Point]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for p in points:
        out.setdefault(p.curve, []).append(p)
    for pts in out.values():
        pts.sort(key=lambda p: p.bytes)
    return out


def invr_c_curves(cs: dict[str, list[Point]]) -> list[str]:
    return [name for name, pts in cs.items() if pts[0].codec == "INVR-C"]


def baseline_curves(cs: dict[str, list[Point]]) -> list[str]:
    """The baselines' curves, 4:4:4 first (the headline for RGB PSNR), otherwise in the order measured."""
    names = [name for name, pts in cs.items() if not pts[0].codec.startswith("INVR")]
    return sorted(names, key=lambda n: "4:4:4" not in n)


def bd_row(test_name: str, test: list[Point], anchor_name: str, anchor: list[Point], kind: str,
           ) -> dict[str, object]:
    ar, ap = [p.kbps for p in anchor], [p.psnr_mean for p in anchor]
    tr, tp = [p.kbps for p in test], [p.psnr_mean for p in test]
    return {
        "test": test_name, "anchor": anchor_name, "kind": kind,
        "bd_rate_pchip": bd_rate(ar, ap, tr, tp, "pchip"),
        "bd_rate_cubic": bd_rate(ar, ap, tr, tp, "cubic"),
        "bd_psnr_pchip": bd_psnr(ar, ap, tr, tp, "pchip"),
        "psnr_overlap_db": overlap(pareto(ar, ap)[1], pareto(tr, tp)[1]),
        "rate_overlap_kbps": overlap(pareto(ar, ap)[0], pareto(tr, tp)[0]),
    }


def bd_table(points: list[Point]) -> list[dict[str, object]]:
    """BD-rate and BD-PSNR of every INVR-C curve against every later one (kind ``invr``: the earlier curve is
    the test, so ``--invr default,v1`` gives the new default against the old), then of every INVR-C curve
    against every baseline (kind ``baseline``: the baseline is the anchor)."""
    cs = curves(points)
    invr = invr_c_curves(cs)
    rows = [bd_row(test, cs[test], anchor, cs[anchor], "invr")
            for i, test in enumerate(invr) for anchor in invr[i + 1:]]
    rows += [bd_row(test, cs[test], anchor, cs[anchor], "baseline")
             for test in invr for anchor in baseline_curves(cs)]
    return rows


def top_psnr(points: list[Point]) -> dict[str, dict[str, object]]:
    """Each curve's highest mean PSNR and the point that reaches it: how far up each curve goes."""
    tops = {}
    for name, pts in curves(points).items():
        best = max(pts, key=lambda p: p.psnr_mean)
        tops[name] = {"psnr": round(best.psnr_mean, 4), "kbps": round(best.kbps, 3),
                      "bpp": round(best.bpp, 5), "setting": best.setting}
    return tops


def behind_rows(test: list[Point], anchor: list[Point]) -> list[dict[str, object]]:
    """One row per test point: its rate and PSNR, the anchor's PSNR at that rate (None outside the anchor's
    rates) and how many dB the test is behind it there (positive: the anchor is better)."""
    ar, ap = [p.kbps for p in anchor], [p.psnr_mean for p in anchor]
    rows = []
    for p in test:
        at = db_behind(ar, ap, p.kbps)
        rows.append({"setting": p.setting, "bpp": round(p.bpp, 5), "kbps": round(p.kbps, 3),
                     "psnr": round(p.psnr_mean, 4), "anchor_psnr": None if at is None else round(at, 4),
                     "db_behind": None if at is None else round(at - p.psnr_mean, 4)})
    return rows


def mean_behind(rows: list[dict[str, object]], bpp: tuple[float, float]) -> float | None:
    """Mean dB behind over the rows whose bpp lies in [lo, hi] and that the anchor's rates cover; None if
    none does (issue 24's figure of merit over 0.1-0.5 bpp)."""
    diffs = [float(r["db_behind"]) for r in rows  # type: ignore[arg-type]
             if r["db_behind"] is not None and bpp[0] <= float(r["bpp"]) <= bpp[1]]  # type: ignore[arg-type]
    return round(float(np.mean(diffs)), 4) if diffs else None


def range_row(test_name: str, test: list[Point], anchor_name: str, anchor: list[Point],
              psnr_db: tuple[float, float], bpp: tuple[float, float]) -> dict[str, object]:
    """The whole-range figures of one test curve against one anchor: BD-rate (PCHIP) over the fixed PSNR
    range (None: a curve does not reach it), dB behind at each test point's rate, and their mean over the
    bpp range."""
    behind = behind_rows(test, anchor)
    return {
        "test": test_name, "anchor": anchor_name,
        "bd_rate_fixed_pchip": bd_rate_fixed([p.kbps for p in anchor], [p.psnr_mean for p in anchor],
                                             [p.kbps for p in test], [p.psnr_mean for p in test], *psnr_db),
        "mean_db_behind": mean_behind(behind, bpp),
        "behind": behind,
    }


def range_table(points: list[Point], psnr_db: tuple[float, float] = FIXED_PSNR_DB,
                bpp: tuple[float, float] = BEHIND_BPP) -> dict[str, object]:
    """The whole-range figures of every INVR-C curve against every baseline (4:4:4 first), with the ranges
    they cover: the common-range BD-rate hides a curve that stops far below the baseline's top."""
    cs = curves(points)
    rows = [range_row(test, cs[test], anchor, cs[anchor], psnr_db, bpp)
            for test in invr_c_curves(cs) for anchor in baseline_curves(cs)]
    return {"psnr_range_db": list(psnr_db), "bpp_range": list(bpp), "rows": rows}


def table1_points(points: list[Point], qp: int) -> dict[str, Point]:
    """Table 1's rows, by curve: each INVR-C curve at the reference QP, INVR-U, and each baseline's point
    nearest in size to the first INVR-C curve's."""
    cs = curves(points)
    chosen: dict[str, Point] = {}
    for name in invr_c_curves(cs):
        chosen[name] = next((p for p in cs[name] if p.setting == f"qp={qp}"), cs[name][0])
    for name, pts in cs.items():
        if pts[0].codec == "INVR-U":
            chosen[name] = pts[0]
    main = next(iter(chosen.values()), None)
    if main is not None:
        for name in baseline_curves(cs):
            chosen[name] = min(cs[name], key=lambda p: abs(math.log(p.bytes / main.bytes)))
    return chosen

"""R-D points and curves (tools/rd.py): one operating point of one codec on one clip, its curve, and what the
curves give: BD-rates of every INVR-C curve against the others and the baselines, and Table 1's choice."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.bd import bd_psnr, bd_rate, overlap, pareto


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

"""--bitrate: a QP per chunk so that the file meets an average bitrate over the clip."""

from __future__ import annotations

import io
from fractions import Fraction

import pytest
from conftest import encode_to_bytes, synthetic_frames

import invrcodec
from invrcodec.codec.encoder import EncoderConfig
from invrcodec.coding.ratecontrol import RateControl, choose_qp


def test_choose_qp_is_the_finest_that_fits() -> None:
    sizes = {qp: 1000 - 7 * qp for qp in range(128)}  # falls with the QP
    assert choose_qp(sizes.__getitem__, 1000) == 0
    assert choose_qp(sizes.__getitem__, 650) == 50
    assert choose_qp(sizes.__getitem__, 649) == 51
    assert choose_qp(sizes.__getitem__, 1) == 127  # nothing fits: the coarsest


def test_budget_carries_the_balance() -> None:
    rc = RateControl(kbps=80, frame_rate=Fraction(25))  # 400 bytes a frame
    assert rc.budget(10) == pytest.approx(4000)
    rc.record(10, 5000)  # 1000 over
    assert rc.budget(10) == pytest.approx(3000)
    assert rc.budget(10, share=0.5) == pytest.approx(3500)


@pytest.mark.parametrize("kbps", [40.0, 90.0])
def test_bitrate_is_met_within_five_percent_over_the_clip(kbps: float) -> None:
    frames = synthetic_frames(24, 24, 12)
    cfg = EncoderConfig.from_preset("ultrafast", chunk_frames=2, hidden=24, layers=2, steps=40, keyint=3,
                                    bitrate=kbps, device="cpu")
    data = encode_to_bytes(frames, cfg)
    with invrcodec.open(io.BytesIO(data)) as f:
        chunk_bytes = sum(e.size + 33 for e in f.index)  # what the rate control accounts for
        qps = {p.tensors[0].qp for p in f.demux()}
    target = kbps * 1000 / 8 * len(frames) / 25
    assert abs(chunk_bytes - target) / target < 0.05, (chunk_bytes, target)
    assert "bitrate=" in f.header.metadata.settings and "qp=auto" in f.header.metadata.settings
    assert len(qps) >= 1

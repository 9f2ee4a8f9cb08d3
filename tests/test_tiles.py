"""Tiles (issue 25): a frame larger than the presets' 128x128 cut into tiles, a network each per chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FAST_DEC, FAST_ENC, run, synthetic_frames, write_clip
from test_codec import encode_all, tiny_config

import invrcodec
from invrcodec.codec.decoder import Decoder
from invrcodec.codec.presets import TILE_SIDE, auto_tile_grid
from invrcodec.codec.sampling import plan_geometry, tile_spans
from invrcodec.metrics import rgb_psnr
from invrcodec.types import StreamInfo, Tile, TileGrid

FRAMES = synthetic_frames(20, 12, 4)


@pytest.mark.parametrize(("size", "grid"), [
    ((128, 128), None), ((176, 144), None), ((191, 64), None),  # round(n / 128) = 1: one tile
    ((320, 240), (107, 120)), ((1280, 720), (128, 120)), ((1920, 1080), (128, 135)), ((960, 540), (120, 135)),
])
def test_auto_tiles_are_about_128_pixels_a_side(size: tuple[int, int], grid: tuple[int, int] | None) -> None:
    got = auto_tile_grid(*size)
    assert (None if got is None else (got.tile_width, got.tile_height)) == grid
    if got is not None:  # every tile side within 2/3 .. 4/3 of TILE_SIDE, the last column and row included
        for tile in got.tiles(*size):
            assert 2 * TILE_SIDE / 3 <= tile.width <= 4 * TILE_SIDE / 3 or tile.x + tile.width == size[0]
            assert TILE_SIDE / 2 <= min(tile.width, tile.height)


def test_a_grid_covers_the_frame_once_row_by_row() -> None:
    tiles = TileGrid(8, 8).tiles(20, 12)
    assert tiles[:4] == (Tile(0, 0, 8, 8), Tile(8, 0, 8, 8), Tile(16, 0, 4, 8), Tile(0, 8, 8, 4))
    cover = np.zeros((12, 20), int)
    for t in tiles:
        cover[t.y:t.y + t.height, t.x:t.x + t.width] += 1
    assert (cover == 1).all() and len(tiles) == TileGrid(8, 8).count(20, 12) == 6


def test_output_pixels_take_the_tile_of_their_nearest_source_pixel() -> None:
    tiles = TileGrid(4, 4).tiles(10, 6)
    same = tile_spans(plan_geometry(10, 6), tiles)  # the stored size: each tile's own eq. 4 grid, exactly
    assert [(s.col0, s.col1, s.row0, s.row1) for s in same[:3]] == [(0, 4, 0, 4), (4, 8, 0, 4), (8, 10, 0, 4)]
    assert list(same[2].xs) == [2 * (0 / 2 - 0.5), 2 * (1 / 2 - 0.5)]
    half = tile_spans(plan_geometry(10, 6, size=(5, 3)), tiles)  # output column 2 sits at source 4.5: tile 1
    assert (half[1].col0, half[1].col1) == (2, 4) and half[1].xs[0] == 2 * (0.5 / 4 - 0.5)
    crop = tile_spans(plan_geometry(10, 6, region=(4, 2, 5, 1)), tiles)  # columns 5-8, rows 1-2
    assert [s.tile for s in crop] == [1, 2]


def test_a_tiled_encode_decodes_to_what_the_encoder_measured() -> None:
    enc, packets = encode_all(FRAMES, tiny_config(steps=120, chunk_frames=2, keyint=0, tile=(8, 8), overlap=0))
    assert enc.header.tiles == TileGrid(8, 8)
    assert [len(p.tensors) for p in packets] == [6 * len(enc.config.representation.tensor_shapes())] * 2
    decoder = Decoder(enc.header)
    for packet in packets:
        frames = np.stack(list(decoder.frames(packet)))
        source = FRAMES[packet.first_frame:packet.first_frame + 2]
        assert rgb_psnr(frames, source) == pytest.approx(packet.train_psnr, abs=1e-9)  # pooled over tiles
    assert decoder.tiles_decoded == 12


@pytest.mark.parametrize("overlap", [0, 1])
def test_a_crop_decodes_only_the_tiles_it_touches(overlap: int) -> None:
    enc, packets = encode_all(FRAMES, tiny_config(steps=60, chunk_frames=2, keyint=0, tile=(8, 8), overlap=overlap))
    whole = Decoder(enc.header)
    full = [np.stack(list(whole.frames(p))) for p in packets]
    crop = Decoder(enc.header)
    for packet, frames in zip(packets, full):  # columns 9-13, rows 2-5: inside tile 1, P-chunk included
        assert np.array_equal(crop.decode(packet, region=(5, 4, 9, 2)), frames[:, 2:6, 9:14])
    assert crop.tiles_decoded == 2
    beside = Decoder(enc.header)  # columns 7-9, rows 2-5: within the overlap of tiles 0 and 1 when there is one
    assert np.array_equal(beside.decode(packets[0], region=(3, 4, 7, 2)), full[0][:, 2:6, 7:10])
    assert beside.tiles_decoded == 2
    across = Decoder(enc.header)  # columns 6-9, rows 6-9: the four tiles around a corner
    assert np.array_equal(across.decode(packets[0], region=(4, 4, 6, 6)), full[0][:, 6:10, 6:10])
    assert across.tiles_decoded == 4


@pytest.mark.parametrize(("size", "output", "region"), [
    ((20, 12), None, None), ((20, 12), (37, 5), None), ((256, 128), None, None),
    ((300, 200), (173, 99), (250, 150, 20, 30)),
])
def test_overlapping_tiles_share_each_pixel_in_weights_that_sum_to_one(
        size: tuple[int, int], output: tuple[int, int] | None, region: tuple[int, int, int, int] | None) -> None:
    grid = TileGrid(8, 8, 2) if size == (20, 12) else TileGrid(128, 128, 4) if size[1] == 128 else \
        TileGrid(107, 120, 8)
    tiles = grid.tiles(*size)
    geometry = plan_geometry(*size, size=output, region=region)
    total = np.zeros((geometry.height, geometry.width))
    for span in tile_spans(geometry, tiles):
        wx = np.ones(span.col1 - span.col0) if span.wx is None else span.wx
        wy = np.ones(span.row1 - span.row0) if span.wy is None else span.wy
        assert (wx > 0).all() and (wy > 0).all()  # a tile is evaluated only where it counts
        x, y, w, h = tiles[span.tile].area  # ... and only inside its area (half a pixel at most beyond)
        assert -1 - 1 / w - 1e-12 <= span.xs.min() and span.xs.max() <= 1 - 1 / w + 1e-12
        assert -1 - 1 / h - 1e-12 <= span.ys.min() and span.ys.max() <= 1 - 1 / h + 1e-12
        total[span.row0:span.row1, span.col0:span.col1] += wy[:, None] * wx[None, :]
    assert np.abs(total - 1).max() < 1e-12


def test_the_overlap_ramps_across_the_border_on_each_networks_area() -> None:
    tiles = TileGrid(128, 128, 4).tiles(256, 128)
    assert [t.area for t in tiles] == [(0, 0, 132, 128), (124, 0, 132, 128)]
    left, right = tile_spans(plan_geometry(256, 128), tiles)
    assert (left.col0, left.col1, right.col0, right.col1) == (0, 132, 124, 256)
    ramp = (np.arange(8) + 0.5) / 8  # frame columns 124..131: the right tile's share rises, the left's falls
    assert np.array_equal(right.wx[:8], ramp) and np.array_equal(left.wx[-8:], 1 - ramp)
    assert left.wy is None and right.wx[8:].tolist() == [1.0] * 124
    assert np.array_equal(right.xs, 2 * (np.arange(132) / 132 - 0.5))  # eq. 4 on the area, to the last bit


def test_an_overlapped_encode_blends_its_tiles_only_beside_the_borders() -> None:
    from invrcodec.codec.decoder import render

    enc, packets = encode_all(FRAMES, tiny_config(steps=120, chunk_frames=2, keyint=0, tile=(8, 8), overlap=2))
    assert enc.header.tiles == TileGrid(8, 8, 2)
    decoder = Decoder(enc.header)
    frames = np.stack(list(decoder.frames(packets[0])))
    spans = tile_spans(plan_geometry(20, 12), decoder.tiles)
    for net, span, tile in zip(decoder.networks(packets[0]), spans, decoder.tiles):
        assert net is not None
        x, y, w, h = tile.area
        own = render(net, (2, h, w)).astype(int)  # the tile's network over its area, as it was trained
        wx = np.ones(w) if span.wx is None else span.wx
        wy = np.ones(h) if span.wy is None else span.wy
        alone = (wy[:, None] * wx[None, :]) == 1
        assert np.array_equal(frames[:, y:y + h, x:x + w][:, alone], own[:, alone])  # where no other tile counts
        assert not alone.all()
    worst = rgb_psnr(frames, FRAMES[:2])
    assert worst > 20  # the blend is a picture, not a misplaced one


def test_a_uniform_tile_is_not_a_collapse() -> None:
    frames = FRAMES.copy()
    frames[:, :8, :8] = 77  # tile 0 is one colour: its flat picture is exact (infinite PSNR)
    enc, packets = encode_all(frames, tiny_config(steps=300, chunk_frames=4, tile=(8, 8)))
    assert len(packets) == 1 and packets[0].train_psnr > 30


def test_paper_and_none_keep_one_network_per_frame() -> None:
    frames = synthetic_frames(300, 140, 1)
    for cfg in (tiny_config(steps=1, tile="none"), tiny_config(steps=1).__class__.from_preset(
            "paper", hidden=8, layers=1, steps=1, device="cpu")):
        enc, _ = encode_all(frames, cfg)
        assert enc.header.tiles is None


def test_invr_enc_tiles_a_file_and_invr_dec_reads_it(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.y4m", synthetic_frames(40, 24, 4), pix_fmt="yuv444p")
    out, raw = tmp_path / "t.invr", tmp_path / "t.rgb"
    enc = run(["invr-enc", *FAST_ENC, "--tile", "16x16", src, out])
    assert enc.returncode == 0, enc.stderr.decode()
    with invrcodec.open(out) as f:  # the default overlap: 2 pixels into each neighbour
        assert f.header.tiles == TileGrid(16, 16, 2)
    probe = run(["invr-probe", out])
    assert b"tiles" in probe.stdout + probe.stderr
    dec = run(["invr-dec", *FAST_DEC, "-f", "rawvideo", "--pix-fmt", "rgb24", out, raw])
    assert dec.returncode == 0, dec.stderr.decode()
    assert raw.stat().st_size == 4 * 24 * 40 * 3
    bad = run(["invr-enc", *FAST_ENC, "--tile", "16", src, tmp_path / "bad.invr"])
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
    wide = run(["invr-enc", *FAST_ENC, "--tile", "16x16", "--tile-overlap", "5", src, tmp_path / "wide.invr"])
    assert wide.returncode != 0 and b"allow at most 4" in wide.stderr and b"Traceback" not in wide.stderr
    assert not (tmp_path / "wide.invr").exists()


def test_a_ladder_of_a_tiled_stream_gives_the_encoders_packets() -> None:
    from invrcodec.codec.ladder import encode_ladder

    configs = [tiny_config(steps=60, chunk_frames=2, keyint=0, tile=(8, 8), qp=qp) for qp in (34, 42)]
    ladder = encode_ladder(FRAMES, StreamInfo(20, 12, 4), configs)
    for config, rung in zip(configs, ladder.rungs):
        assert rung.packets == encode_all(FRAMES, config)[1]

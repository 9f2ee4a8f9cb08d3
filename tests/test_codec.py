"""Encoder and decoder: chunking, weight coding, determinism, bad input, round trips."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_frames

import invrcodec
from invrcodec.codec.decoder import Decoder, build_network, render, render_reference
from invrcodec.codec.encoder import ENCODER_LIMITS, Encoder, EncoderConfig
from invrcodec.errors import InvrConfigError, InvrEncodeError, InvrMediaError
from invrcodec.net.fit import Recipe, fit_chunk
from invrcodec.format.structs import LIMITS
from invrcodec.metrics import mean_of_psnrs, pooled_psnr, rgb_psnr
from invrcodec.codec.presets import BANDS_BY_QP, PRESETS
from invrcodec.types import CoderKind, StreamInfo, TensorRole
from invrcodec.coding.weights import decode_weights, encode_weights, qp_plan


def tiny_config(**kw: object) -> EncoderConfig:
    base: dict[str, object] = dict(hidden=24, layers=2, enc_dims=(6, 6, 3), steps=60, device="cpu")
    base.update(kw)
    cfg = EncoderConfig.from_preset("ultrafast", **base)  # type: ignore[arg-type]
    return replace(cfg, recipe=replace(cfg.recipe, batch=2048))


def encode_all(frames: np.ndarray, cfg: EncoderConfig) -> tuple[Encoder, list[invrcodec.types.Packet]]:
    t, h, w, _ = frames.shape
    enc = Encoder(StreamInfo(w, h, t), cfg)
    packets = [p for f in frames for p in enc.encode(f)]
    packets += enc.encode(None)
    return enc, packets


@pytest.mark.parametrize(("n", "chunk", "expect"), [(37, 15, [15, 15, 7]), (5, 15, [5]), (1, 15, [1]), (4, 2, [2, 2])])
def test_constant_size_chunking(n: int, chunk: int, expect: list[int]) -> None:
    frames = synthetic_frames(12, 10, n)
    _, packets = encode_all(frames, tiny_config(chunk_frames=chunk, steps=5))
    assert [p.frame_count for p in packets] == expect
    assert [p.first_frame for p in packets] == list(np.cumsum([0, *expect[:-1]]))
    assert [p.index for p in packets] == list(range(len(expect)))


@pytest.mark.parametrize(("w", "h"), [(127, 93), (16, 16), (1, 1), (5, 3)])
def test_round_trip_odd_and_tiny_sizes(tmp_path: Path, w: int, h: int) -> None:
    frames = synthetic_frames(w, h, 3)
    enc, packets = encode_all(frames, tiny_config(steps=40))
    path = tmp_path / "a.invr"
    with invrcodec.open(path, "w", header=enc.header) as out:
        for p in packets:
            out.mux(p)
    with invrcodec.open(path) as f:
        decoded = np.stack(list(f.decode()))
    assert decoded.shape == frames.shape
    assert rgb_psnr(decoded, frames) == pytest.approx(packets[0].train_psnr, abs=1e-6)


def test_round_trip_learns_the_clip() -> None:
    frames = synthetic_frames(32, 24, 6)
    _, packets = encode_all(frames, tiny_config(hidden=48, layers=3, steps=300))
    dec = Decoder(_header_for(frames, tiny_config(hidden=48, layers=3, steps=300)))
    out = np.concatenate([dec.decode(p) for p in packets])
    assert rgb_psnr(out, frames) > 25.0


def _header_for(frames: np.ndarray, cfg: EncoderConfig) -> invrcodec.types.Header:
    t, h, w, _ = frames.shape
    return Encoder(StreamInfo(w, h, t), cfg).header


def test_encoding_is_reproducible_and_decoding_deterministic() -> None:
    frames = synthetic_frames(20, 14, 4)
    cfg = tiny_config(steps=30, seed=3)
    enc1, p1 = encode_all(frames, cfg)
    _, p2 = encode_all(frames, cfg)
    assert p1 == p2  # same seed, same CPU: same bytes
    dec = Decoder(enc1.header)
    a, b = dec.decode(p1[0]), dec.decode(p1[0])
    assert a.tobytes() == b.tobytes()
    assert dec.decode(p1[0], 1, 3).tobytes() == a[1:3].tobytes()


@pytest.mark.parametrize("kind", [CoderKind.DEEPCABAC, CoderKind.RAW_FLOAT32, CoderKind.RAW_FLOAT16])
def test_decoder_weights_equal_encoder_reconstruction_bit_for_bit(kind: CoderKind) -> None:
    cfg = replace(tiny_config(), coder=kind)
    rep, coder = cfg.representation, cfg.coder_params()
    torch.manual_seed(0)
    net = build_network(rep, {n: np.random.default_rng(0).normal(0, 0.05, s).astype(np.float32)
                              for n, s in rep.tensor_shapes()}, torch.device("cpu"))
    state = {n: p.detach().numpy() for n, p in net.named_parameters()}
    plan = qp_plan(cfg.qp, rep) if kind == CoderKind.DEEPCABAC else None
    tensors, recon = encode_weights(state, rep, coder, plan)
    decoded = decode_weights(tensors, rep, coder)
    for name, _ in rep.tensor_shapes():
        assert decoded[name].dtype == np.float32
        assert decoded[name].tobytes() == recon[name].tobytes()
    if kind == CoderKind.RAW_FLOAT32:
        assert all(decoded[n].tobytes() == state[n].tobytes() for n in state)
    if kind == CoderKind.DEEPCABAC:
        assert sum(len(t.data) for t in tensors) < 4 * rep.parameter_count / 3


def test_deepcabac_step_sizes_follow_qp() -> None:
    from invrcodec.coding import deepcabac

    assert deepcabac.step_size(-42, 2) == pytest.approx(6 / 8192)
    w = np.linspace(-0.02, 0.02, 101, dtype=np.float32)
    for qp in (-48, -40, -30):
        levels = deepcabac.quantize(w, qp, 2, False, 10)
        back = deepcabac.dequantize(levels, qp, 2)
        assert np.abs(back - w).max() <= deepcabac.step_size(qp, 2) / 2 + 1e-9


def test_fast_render_matches_reference_within_one_code_value() -> None:
    rep = tiny_config().representation
    torch.manual_seed(2)
    from invrcodec.net.model import INVRNet

    net = INVRNet(rep).eval()
    a, b = render(net, (3, 11, 17)), render_reference(net, (3, 11, 17))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_diverging_training_is_reported_not_written() -> None:
    frames = synthetic_frames(8, 8, 2)
    rep = tiny_config().representation
    recipe = Recipe(steps=50, lr=1e12, eval_every=10)
    with pytest.raises(InvrEncodeError, match="diverged"):
        fit_chunk(frames, rep, recipe, device=torch.device("cpu"), max_retries=1)


def test_psnr_target_stops_early() -> None:
    frames = synthetic_frames(16, 16, 2)
    rep = tiny_config(hidden=32, chunk_frames=2).representation
    res = fit_chunk(frames, rep, Recipe(steps=2000, lr=1e-3, batch=512, eval_every=50),
                    device=torch.device("cpu"), psnr_target=20.0)
    assert res.psnr >= 20.0 and res.steps < 2000


def test_bad_frames_and_settings_are_refused() -> None:
    enc = Encoder(StreamInfo(8, 6, 1), tiny_config())
    with pytest.raises(InvrMediaError, match="expected uint8"):
        enc.encode(np.zeros((6, 8, 4), np.uint8))
    with pytest.raises(InvrMediaError):
        enc.encode(np.zeros((6, 8, 3), np.float32))
    with pytest.raises(InvrConfigError):
        EncoderConfig.from_preset("warp9")
    with pytest.raises(InvrConfigError):
        tiny_config(chunk_frames=0)
    with pytest.raises(InvrConfigError):
        tiny_config(device="tpu")
        Encoder(StreamInfo(8, 6, 1), tiny_config(device="tpu"))
    with pytest.raises(InvrMediaError):
        Encoder(StreamInfo(0, 6, 1), tiny_config())


def test_paper_preset_is_the_papers_recipe() -> None:
    paper = PRESETS["paper"]
    assert (paper.steps, paper.lr, paper.batch, paper.schedule, paper.l1) == (25000, 2e-5, 0, "constant", 1e-6)
    assert paper.arithmetic == "reference"


def test_the_default_network_follows_the_qp_and_an_explicit_one_wins() -> None:
    from invrcodec.codec.presets import band_for_qp

    def network(**kw: object) -> tuple[int, int, int]:
        cfg = EncoderConfig.from_preset(device="cpu", **kw)  # type: ignore[arg-type]
        return cfg.representation.hidden, cfg.representation.chunk_frames, cfg.recipe.steps

    fast = PRESETS["fast"].steps
    assert [network(qp=q)[:2] for q in (20, 22, 23, 26, 27, 30, 31, 34, 35, 38, 39, 42, 43, 46, 60)] == [
        (192, 15), (192, 15), (192, 30), (192, 30), (192, 45), (192, 45), (160, 90), (160, 90), (128, 90),
        (128, 90), (96, 90), (96, 90), (64, 90), (64, 90), (64, 90)]
    # A shorter chunk trains as much per frame (Recipe.for_frames), so the encode takes about as long; QP 38
    # and finer train twice the preset's steps (QpBand.training), with its checks as far apart in the schedule.
    assert [network(qp=q)[2] for q in (22, 26, 30, 34, 38, 42, 46)] == [
        fast // 2, 2478, fast, 2 * fast, 2 * fast, fast, fast]
    assert EncoderConfig.from_preset(qp=38).recipe.eval_every == 2 * PRESETS["fast"].eval_every
    # at Adam 1e-3 (QpBand.lr); the coarser bands keep the preset's rate, and so does a given --steps
    assert [EncoderConfig.from_preset(qp=q).recipe.lr for q in (30, 38, 42)] == [1e-3, 1e-3, PRESETS["fast"].lr]
    assert EncoderConfig.from_preset(qp=38, steps=500).recipe.lr == PRESETS["fast"].lr
    assert network() == (128, 90, 2 * fast)  # the default QP
    assert network(qp=46, hidden=128)[:2] == (128, 90)
    assert network(qp=22, chunk_frames=90) == (192, 90, 2 * fast)  # a given chunk length is kept
    assert network(qp=22, steps=500) == (192, 15, 500)  # and given steps, for chunks of any length
    assert network(qp=46, chunk_frames=45) == (64, 45, fast // 2)  # and trains as much per frame
    assert network(qp=46, bitrate=100.0)[:2] == (128, 90)  # the QP varies by chunk: chosen per stream (below)
    assert network(preset="medium", qp=22)[:2] == (128, 90)  # not measured: unchanged
    assert network(preset="paper", qp=22)[:2] == (128, 15)
    assert network(qp=22, variant="even")[:2] == (128, 90)
    assert [network(preset="ultrafast", qp=q)[:2] for q in (22, 30, 34, 38, 42, 46)] == [
        (160, 30), (160, 45), (160, 90), (128, 90), (96, 90), (64, 90)]
    assert band_for_qp("slow", 46) is None
    for bands in BANDS_BY_QP.values():  # finer QPs, never a smaller network per frame: rate rises as QP falls
        per_frame = [b.hidden ** 2 / b.chunk_frames for b in bands]
        assert per_frame == sorted(per_frame, reverse=True)


@pytest.mark.parametrize(("kbps", "hidden", "chunk_frames"), [
    (3000.0, 192, 15), (1500.0, 192, 30), (700.0, 192, 45), (200.0, 160, 90), (120.0, 128, 90),
    (60.0, 96, 90), (30.0, 64, 90)])
def test_under_a_bitrate_the_network_is_the_largest_a_seconds_share_affords(kbps: float, hidden: int,
                                                                           chunk_frames: int) -> None:
    stream = StreamInfo(128, 128, 90, frame_rate=Fraction(30))
    enc = Encoder(stream, EncoderConfig.from_preset("fast", bitrate=kbps, device="cpu"))
    rep = enc.config.representation
    assert (rep.hidden, rep.chunk_frames) == (hidden, chunk_frames)
    assert enc.header.representation == rep  # what the file says
    band = next(b for b in BANDS_BY_QP["fast"] if (b.hidden, b.chunk_frames) == (hidden, chunk_frames))
    # the band's training (QpBand.training), the same per frame
    assert enc.config.recipe == band.trained(PRESETS["fast"]).for_frames(chunk_frames, 90)
    given = Encoder(stream, EncoderConfig.from_preset("fast", bitrate=kbps, hidden=80, device="cpu"))
    assert given.config.representation.hidden == 80
    assert given.config.representation.chunk_frames <= chunk_frames  # a narrower network: as long or shorter
    fixed = Encoder(stream, EncoderConfig.from_preset("fast", bitrate=kbps, chunk_frames=90, steps=500,
                                                      device="cpu"))
    assert (fixed.config.representation.chunk_frames, fixed.config.recipe.steps) == (90, 500)


def test_real_clip_round_trip(shared_media: Path, tmp_path: Path) -> None:
    from invrcodec.media.pyav import VideoReader

    with VideoReader(shared_media / "carphone_pristine.mp4", frames=6, crop_square=True, scale=(48, 48)) as r:
        frames = np.stack(list(r))
    cfg = EncoderConfig.from_preset("ultrafast", chunk_frames=3, steps=150, hidden=64, device="cpu")
    enc, packets = encode_all(frames, cfg)
    with invrcodec.open(tmp_path / "c.invr", "w", header=enc.header) as out:
        out.mux(packets)
    with invrcodec.open(tmp_path / "c.invr") as f:
        out_frames = np.stack(list(f.decode()))
        assert f.frame_count == 6
    assert rgb_psnr(out_frames, frames) > 20.0


def test_mixed_precision_path_trains() -> None:
    # The CUDA path autocasts to float16; on the CPU the same code runs with bfloat16, so CI covers it.
    frames = synthetic_frames(16, 16, 2)
    rep = tiny_config(hidden=32, chunk_frames=2).representation
    res = fit_chunk(frames, rep, Recipe(steps=400, lr=1e-3, batch=512, eval_every=50),
                    device=torch.device("cpu"), psnr_target=18.0, amp=True)
    assert res.psnr >= 18.0
    assert all(v.dtype == np.float32 for v in res.state.values())


def test_refinement_keeps_decoder_exact_and_recovers_quantisation_loss() -> None:
    """Staged coding with refinement: the decoder's weights are still the encoder's reconstruction bit for
    bit, the packet's PSNR is what decoding gives, and at a coarse QP it beats coding without refinement."""
    frames = synthetic_frames(32, 24, 6)
    base = tiny_config(hidden=48, layers=3, steps=300, qp=44)
    plain = encode_all(frames, replace(base, recipe=replace(base.recipe, refine=0.0)))[1][0]
    refined_cfg = replace(base, recipe=replace(base.recipe, refine=0.2, refine_lr=3e-4))
    enc, packets = encode_all(frames, refined_cfg)
    refined = packets[0]
    assert len(refined.tensors) == len(refined_cfg.representation.tensor_shapes())
    decoded = Decoder(enc.header).decode(refined)
    assert refined.train_psnr == pytest.approx(rgb_psnr(decoded, frames), abs=1e-9)
    assert refined.train_psnr > plain.train_psnr + 0.1, (plain.train_psnr, refined.train_psnr)


def test_frozen_tensors_are_not_trained() -> None:
    from invrcodec.net.fit import fit_chunk

    frames = synthetic_frames(16, 12, 3)
    cfg = tiny_config(steps=20)
    rep = cfg.representation
    first = fit_chunk(frames, rep, cfg.recipe, device=torch.device("cpu"))
    frozen = {"layers.0.weight": np.round(first.state["layers.0.weight"], 2)}
    second = fit_chunk(frames, rep, cfg.recipe, device=torch.device("cpu"), init=first.state, frozen=frozen)
    assert second.state["layers.0.weight"].tobytes() == frozen["layers.0.weight"].astype(np.float32).tobytes()
    assert not np.array_equal(second.state["layers.1.weight"], first.state["layers.1.weight"])


def test_encoder_limits_are_within_the_format() -> None:
    """The encoder's limits come from format.LIMITS, tighter where it chooses, never looser."""
    for name, value in ENCODER_LIMITS.items():
        assert 1 <= value <= LIMITS[name], name
    lim = ENCODER_LIMITS
    tiny_config(hidden=lim["max_hidden"], layers=1).validate()
    with pytest.raises(InvrConfigError, match=f"1..{lim['max_hidden']}"):
        tiny_config(hidden=lim["max_hidden"] + 1, layers=1)
    with pytest.raises(InvrConfigError, match=f"0..{lim['max_enc_dim']}"):
        tiny_config(enc_dims=(lim["max_enc_dim"] + 1, 1, 1))
    side = lim["max_dimension"] + 1
    with pytest.raises(InvrMediaError, match=f"exceeds {side - 1}x{side - 1}"):
        Encoder(StreamInfo(side, 16, 1), tiny_config())


def test_tensor_roles() -> None:
    """Representation names every tensor's role; the QP plan and the coding stages go by it."""
    rep = tiny_config(layers=3).representation
    assert rep.tensor_names() == [name for name, _ in rep.tensor_shapes()]
    assert rep.tensor_names(TensorRole.FIRST_WEIGHT) == ["layers.0.weight"]
    assert rep.tensor_names(TensorRole.HIDDEN_WEIGHT) == ["layers.1.weight", "layers.2.weight"]
    assert rep.tensor_names(TensorRole.BIAS) == ["layers.0.bias", "layers.1.bias", "layers.2.bias"]
    assert rep.tensor_names(TensorRole.OUT_WEIGHT, TensorRole.OUT_BIAS) == ["out.weight", "out.bias"]
    plan = qp_plan(38, rep)
    assert [plan.qp_for(role) for role in TensorRole] == [
        plan.first_weight, plan.hidden_weight, plan.bias, plan.out_weight, plan.out_bias]


@pytest.mark.parametrize(("layers", "ramped"), [(2, [0]), (3, [-2, 2]), (4, [-2, 0, 2])])
def test_hidden_layer_qps_ramp_with_depth(layers: int, ramped: list[int]) -> None:
    """The hidden layers' QPs rise with depth about the plan's hidden QP; every other tensor keeps its role's."""
    cfg = tiny_config(layers=layers)
    rep = cfg.representation
    plan = qp_plan(38, rep)
    qps = plan.tensor_qps(rep)
    hidden = rep.tensor_names(TensorRole.HIDDEN_WEIGHT)
    assert [qps[name] - plan.hidden_weight for name in hidden] == ramped
    for name, _, role in rep.tensor_layout():
        if role != TensorRole.HIDDEN_WEIGHT:
            assert qps[name] == plan.qp_for(role)
    state = {n: np.random.default_rng(0).normal(0, 0.05, shape).astype(np.float32)
             for n, shape in rep.tensor_shapes()}
    coded, _ = encode_weights(state, rep, cfg.coder_params(), plan)
    assert [t.qp for t in coded] == [qps[name] for name in rep.tensor_names()]


def test_rgb_psnr_is_the_float64_mean_in_blocks_of_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """rgb_psnr sums integer squared differences a block at a time (flat memory for a chunk of any size) and
    gives the float64 mean's PSNR to the last bit, whatever the block size; unequal shapes are an error."""
    import invrcodec.metrics

    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (7, 13, 11, 3), dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()) / 255.0**2
    expected = 10.0 * np.log10(1.0 / mse)
    assert rgb_psnr(a, b) == pytest.approx(expected, abs=1e-12)
    whole = rgb_psnr(a, b)
    monkeypatch.setattr(invrcodec.metrics, "PSNR_BLOCK", 100)
    assert rgb_psnr(a, b) == whole
    assert rgb_psnr(torch.from_numpy(a).transpose(1, 2), torch.from_numpy(b).transpose(1, 2)) == whole
    with pytest.raises(ValueError, match="differ"):
        rgb_psnr(a, b[:3])


def test_the_two_mean_psnrs() -> None:
    """pooled_psnr averages the MSE, mean_of_psnrs the dB values; the first is never above the second."""
    assert pooled_psnr([30.0, 30.0]) == pytest.approx(30.0)
    assert mean_of_psnrs([30.0, 40.0]) == 35.0
    assert pooled_psnr([30.0, 40.0]) == pytest.approx(10 * np.log10(2 / (1e-3 + 1e-4)))
    assert mean_of_psnrs([30.0, 40.0], [3, 1]) == 32.5
    assert pooled_psnr([30.0, 40.0], [3, 1]) == pytest.approx(10 * np.log10(4 / (3e-3 + 1e-4)))
    assert pooled_psnr([25.0, 31.0, 44.0]) < mean_of_psnrs([25.0, 31.0, 44.0])

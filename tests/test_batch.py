"""Chunks trained together (INVRBatch, fit_chunks) train exactly as they would alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from invrcodec.codec.encoder import Encoder, EncoderConfig, auto_parallel_chunks
from invrcodec.net.fit import Recipe, _Attempt, _fit_batch, _Start, fit_chunk, fit_chunks
from invrcodec.net.model import INVRBatch, INVRNet, axis_features
from invrcodec.codec.presets import PRESETS, VARIANTS
from invrcodec.types import StreamInfo

CPU = torch.device("cpu")
REP = replace(VARIANTS["invr"], hidden=32, enc_dims=(8, 8, 4), chunk_frames=5)  # = SIZES[0]: no step scaling
SIZES = (5, 16, 20)  # T, H, W


def _chunks(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (*SIZES, 3), dtype=np.uint8)
    return [np.clip(base.astype(int) + 40 * i, 0, 255).astype(np.uint8) for i in range(n)]


def _nets(n: int, rep=REP) -> list[INVRNet]:
    nets = []
    for seed in range(n):
        torch.manual_seed(seed)
        nets.append(INVRNet(rep))
    return nets


@pytest.mark.parametrize("variant", ["invr", "none", "relu"])
def test_batch_computes_each_network(variant: str) -> None:
    rep = replace(VARIANTS[variant], hidden=16)
    if variant != "none":
        rep = replace(REP, network=VARIANTS[variant].network)
    nets = _nets(3, rep)
    batch = INVRBatch.stack(nets)
    gen = torch.Generator().manual_seed(0)
    ti = torch.randint(0, SIZES[0], (3, 2), generator=gen)
    yi = torch.randint(0, SIZES[1], (3, 2, 4), generator=gen)
    xi = torch.randint(0, SIZES[2], (3, 2, 6), generator=gen)
    gamma = torch.randn(3, 10, rep.in_features, generator=gen)
    with torch.no_grad():
        grid = batch.forward_grid(ti, yi, xi, SIZES)
        frames = batch.forward_frames(ti, SIZES)
        ref = batch.forward_reference(gamma)
        for b, net in enumerate(nets):
            alone, one_b = net.batch(), slice(b, b + 1)  # the network alone: a batch of one, nn.Linear's path
            want = alone.forward_grid(ti[one_b], yi[one_b], xi[one_b], SIZES)[0]
            torch.testing.assert_close(grid[b], want, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(frames[b], alone.forward_frames(ti[one_b], SIZES)[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(ref[b], alone.forward_reference(gamma[one_b])[0], atol=1e-5, rtol=1e-5)
            one = batch.forward_frames(ti[one_b], SIZES, chunks=torch.tensor([b]))
            torch.testing.assert_close(one[0], frames[b], atol=1e-5, rtol=1e-5)
        # The tables the decoder renders from (INVRNet.axis_tables) are the training's, to the last bit.
        for trained, decoded in zip(nets[0].batch().axis_tables(SIZES), nets[0].axis_tables(SIZES)):
            assert torch.equal(trained[0], decoded)


def test_batch_state_and_select_keep_each_chunk() -> None:
    nets = _nets(3)
    batch = INVRBatch.stack(nets)
    picked = batch.select([2, 0])
    assert picked.count == 2
    for row, b in enumerate([2, 0]):
        want = {name: p.detach().numpy() for name, p in nets[b].named_parameters()}
        got = picked.state(row)
        assert list(got) == list(want)
        assert all(np.array_equal(got[k], want[k]) for k in want)
    assert axis_features(SIZES[2], 0, REP).shape[1] == len(batch.cols[0])


@pytest.mark.parametrize("recipe", [
    Recipe(steps=40, lr=1e-3, batch=512, eval_every=20, warmup=5),  # grids through the per-axis tables
    replace(PRESETS["paper"], steps=20, eval_every=10),  # whole frames, textbook arithmetic
    Recipe(steps=20, lr=1e-3, batch=300, arithmetic="reference", eval_every=10),  # random pixels, textbook
], ids=["tables", "paper", "reference"])
def test_chunks_trained_together_train_as_alone(recipe: Recipe) -> None:
    chunks = _chunks(3)
    alone = [fit_chunk(c, REP, recipe, device=CPU, seed=10 + i) for i, c in enumerate(chunks)]
    together = fit_chunks(chunks, REP, recipe, device=CPU, seeds=[10, 11, 12])
    for a, b in zip(alone, together):
        assert b.steps == a.steps and b.psnr == pytest.approx(a.psnr, abs=1e-3)
        for name in a.state:
            np.testing.assert_allclose(b.state[name], a.state[name], atol=1e-6, rtol=0)
    # Different chunks really got different networks.
    assert not np.allclose(together[0].state["out.bias"], together[1].state["out.bias"])


@pytest.mark.parametrize("count", [3, 2], ids=["held", "compacted"])
def test_a_finished_chunk_leaves_the_batch_and_the_rest_go_on(count: int) -> None:
    # One of three finished: its rows are held in place; one of two: the batch shrinks to the other.
    chunks = _chunks(count)
    chunks[0] = np.full_like(chunks[0], 128)  # flat: meets the target within a few steps; noise never does
    recipe = Recipe(steps=120, lr=1e-3, batch=512, eval_every=40, warmup=5)
    alone = [fit_chunk(c, REP, recipe, device=CPU, seed=i, psnr_target=30.0) for i, c in enumerate(chunks)]
    together = fit_chunks(chunks, REP, recipe, device=CPU, seeds=list(range(count)), psnr_target=30.0)
    assert together[0].steps < 120 and together[0].psnr >= 30.0
    assert all(r.steps == 120 for r in together[1:])
    for a, b in zip(alone, together):
        assert b.steps == a.steps and b.psnr == pytest.approx(a.psnr, abs=1e-3)
        for name in a.state:
            np.testing.assert_allclose(b.state[name], a.state[name], atol=1e-5, rtol=0)


def test_a_diverging_chunk_leaves_the_batch_alone() -> None:
    chunks = _chunks(3)
    recipe = Recipe(steps=30, lr=1e-3, batch=512, eval_every=10)
    bad = {"out.weight": np.full((3, REP.hidden), np.inf, dtype=np.float32)}
    starts = [_Start(j, init, {}, None) for j, init in enumerate([{}, bad, {}])]
    done, diverged = _fit_batch(chunks, starts, _Attempt(REP, recipe, CPU))
    assert sorted(done) == [0, 2] and list(diverged) == [1]
    for j in (0, 2):
        alone = fit_chunk(chunks[j], REP, recipe, device=CPU, seed=j)
        np.testing.assert_allclose(done[j].state["layers.0.weight"], alone.state["layers.0.weight"],
                                   atol=1e-6)


def test_a_short_last_chunk_trains_alongside_as_alone() -> None:
    # Chunks of different lengths train as separate batches stepped together, each by its own length's
    # recipe: 3 of 5 frames take 40 * 3/5 = 24 steps (in proportion, above half the chunk), alone or alongside.
    chunks = [*_chunks(2), _chunks(3)[2][:3]]
    recipe = Recipe(steps=40, lr=1e-3, batch=512, eval_every=20, warmup=5)
    alone = [fit_chunk(c, REP, recipe, device=CPU, seed=i) for i, c in enumerate(chunks)]
    together = fit_chunks(chunks, REP, recipe, device=CPU, seeds=[0, 1, 2])
    assert recipe.for_frames(3, REP.chunk_frames).steps == 24
    assert [r.steps for r in alone] == [r.steps for r in together] == [40, 40, 24]
    for a, b in zip(alone, together):
        assert b.psnr == pytest.approx(a.psnr, abs=1e-3)
        for name in a.state:
            np.testing.assert_allclose(b.state[name], a.state[name], atol=1e-6, rtol=0)


def test_chunks_of_different_frame_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="equal frame sizes"):
        fit_chunks([np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 4, 5, 3), np.uint8)], REP,
                   Recipe(steps=1, lr=1e-3), device=CPU, seeds=[0, 1])


def test_encoder_trains_chunks_together_with_the_same_result() -> None:
    frames = _chunks(1)[0]
    video = np.concatenate([frames, frames[::-1], frames[:1]])  # 11 frames: chunks of 4, 4 and 3
    stream = StreamInfo(width=SIZES[2], height=SIZES[1], frame_count=len(video))
    packets = {}
    emitted = {1: [3, 7, "flush"], 2: [7, 7, "flush"], 3: ["flush"] * 3}  # 3: the short chunk with the others
    for parallel, when in emitted.items():
        cfg = EncoderConfig.from_preset("ultrafast", chunk_frames=4, hidden=32, enc_dims=(8, 8, 4),
                                        steps=60, device="cpu", parallel_chunks=parallel)
        cfg = replace(cfg, recipe=replace(cfg.recipe, compile=False, cpu_bf16=False))
        enc = Encoder(stream, cfg)
        got, emitted_at = [], []
        for i, f in enumerate(video):
            new = enc.encode(f)
            emitted_at += [i] * len(new)
            got += new
        last = enc.encode(None)
        got += last
        emitted_at += ["flush"] * len(last)
        assert [(p.index, p.first_frame, p.frame_count) for p in got] == [(0, 0, 4), (1, 4, 4), (2, 8, 3)]
        assert emitted_at == when
        packets[parallel] = got
    for parallel in (2, 3):
        for a, b in zip(packets[1], packets[parallel]):
            assert b.train_psnr == pytest.approx(a.train_psnr, abs=0.02)


def test_auto_parallel_is_one_on_the_cpu() -> None:
    cfg = EncoderConfig.from_preset("fast", device="cpu")
    assert auto_parallel_chunks(cfg, StreamInfo(width=128, height=128, frame_count=500), CPU) == 1
    assert Encoder(StreamInfo(width=16, height=16, frame_count=1), cfg).parallel == 1


def test_the_gpu_settings_train_chunks_as_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # CI has no GPU: run what CUDA changes (float16 autocast with loss scaling, losses read back every 10
    # steps, multi-frame PSNR checks) on the CPU, where float16 autocast exists too.
    import invrcodec.net.fit as fit_module

    monkeypatch.setattr(fit_module, "_how", lambda device: fit_module._How(True, torch.float16, 10, 1 << 20))
    chunks = _chunks(3)
    chunks[0] = np.full_like(chunks[0], 128)
    recipe = Recipe(steps=60, lr=1e-3, batch=512, eval_every=20, warmup=5)
    alone = [fit_chunk(c, REP, recipe, device=CPU, seed=i, psnr_target=30.0) for i, c in enumerate(chunks)]
    together = fit_chunks(chunks, REP, recipe, device=CPU, seeds=[0, 1, 2], psnr_target=30.0)
    assert together[0].steps % 10 == 0 and together[0].steps < 60 and together[0].psnr >= 30.0
    for a, b in zip(alone, together):
        assert b.steps == a.steps and b.psnr == pytest.approx(a.psnr, abs=0.05)
        for name in a.state:
            np.testing.assert_allclose(b.state[name], a.state[name], atol=1e-3, rtol=0)

"""The bit estimate of rate-aware training (invrcodec.coding.ratemodel) against DeepCABAC's real coded sizes, and what
training with it does to the coded size (docs/results.md, "Rate-aware training")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import synthetic_frames

from invrcodec.codec.encoder import EncoderConfig
from invrcodec.net.fit import Recipe, fit_chunk
from invrcodec.coding.ratemodel import coded_steps, estimate_bits, laplace_bits, rate_target
from invrcodec.types import Representation
from invrcodec.coding.weights import encode_weights, qp_plan

pytest.importorskip("nncodec.extensions.deepCABAC")

CPU = torch.device("cpu")
REP = Representation(hidden=48, layers=3, enc_dims=(6, 6, 3), chunk_frames=8)
RECIPE = Recipe(steps=300, lr=1.5e-3, warmup=20, batch=2048, grid_frames=8, eval_every=300)
CODER = EncoderConfig().coder_params()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synthetic_frames(24, 24, 8, seed=3)


@pytest.fixture(scope="module")
def trained(frames: np.ndarray) -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    return fit_chunk(frames, REP, RECIPE, device=CPU, seed=0).state


def _coded_bytes(state: dict[str, np.ndarray], qp: int) -> dict[str, int]:
    tensors, _ = encode_weights(state, REP, CODER, qp_plan(qp, REP))
    return {name: len(t.data) for (name, _), t in zip(REP.tensor_shapes(), tensors)}


def test_laplace_bits_are_a_code() -> None:
    """2^-bits over the integers sums to one at any scale (a real distribution), and is symmetric."""
    k = torch.arange(-2000, 2001, dtype=torch.float64)
    for scale in (0.05, 0.3, 1.0, 7.0, 60.0):
        bits = laplace_bits(k, scale)
        assert float((2.0 ** -bits).sum()) == pytest.approx(1.0, abs=1e-6)
        assert torch.equal(bits, laplace_bits(-k, scale))


def test_estimate_is_differentiable_everywhere() -> None:
    w = torch.tensor([0.0, 1e-7, 3e-4, -3e-4, 2e-3, -0.5], requires_grad=True)
    bits = laplace_bits(w / 1e-3, 2.0).sum()
    bits.backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()
    assert w.grad[0] == 0 and w.grad[2] > 0 and w.grad[3] < 0  # smaller magnitudes cost fewer bits


@pytest.mark.parametrize("qp", [30, 38, 44])
def test_estimate_within_15_percent_of_deepcabac(trained: dict[str, np.ndarray], qp: int) -> None:
    """Weight tensors of a trained tiny network: the estimate is within 15% of the real DeepCABAC size each,
    and within 10% over the network's weights. At QP 44 the last hidden layer is coded at QP 48's step (the
    plan's ramp), the coarsest tested; coarser, this tiny network's 2,304-weight tensors cost under 1.5 bits
    a weight and DeepCABAC's context adaptation, which the estimate leaves out, is a larger share."""
    real = _coded_bytes(trained, qp)
    est = estimate_bits(trained, coded_steps(REP, qp, CODER))
    weights = [name for name, shape in REP.tensor_shapes() if len(shape) == 2 and math.prod(shape) >= 1000]
    assert weights
    for name in weights:
        assert est[name] / 8 == pytest.approx(real[name], rel=0.15), name
    assert sum(est[n] for n in weights) / 8 == pytest.approx(sum(real[n] for n in weights), rel=0.10)


@pytest.mark.parametrize("qp", [38, 46])
def test_plain_rounding_would_miss_the_dependent_quantiser(trained: dict[str, np.ndarray], qp: int) -> None:
    """The same model with plain rounding at the coded step (kappa 1) overestimates the weights' bits by over
    10%; the trellis factor is what makes it fit."""
    weights = [name for name, shape in REP.tensor_shapes() if len(shape) == 2 and math.prod(shape) >= 1000]
    real = sum(v for n, v in _coded_bytes(trained, qp).items() if n in weights)
    steps = coded_steps(REP, qp, CODER)
    naive = sum(v for n, v in estimate_bits(trained, steps, kappa=1.0).items() if n in weights) / 8
    fitted = sum(v for n, v in estimate_bits(trained, steps).items() if n in weights) / 8
    assert naive > 1.10 * real
    assert abs(fitted - real) < 0.5 * abs(naive - real)


def test_rate_term_shrinks_the_coded_size(frames: np.ndarray, trained: dict[str, np.ndarray]) -> None:
    """Trained with the rate term for QP 42, the same network codes smaller at QP 42 and still fits the clip."""
    target = rate_target(REP, 42, CODER, c=3e4, span=0.5)
    assert target is not None
    rated = fit_chunk(frames, REP, RECIPE, device=CPU, seed=0, rate=target)
    plain = fit_chunk(frames, REP, RECIPE, device=CPU, seed=0)
    assert plain.state["layers.1.weight"] == pytest.approx(trained["layers.1.weight"])  # deterministic
    before, after = sum(_coded_bytes(plain.state, 42).values()), sum(_coded_bytes(rated.state, 42).values())
    assert after < 0.7 * before  # measured: 1,636 bytes against 3,266
    assert rated.psnr > 30.0  # measured: 35.8 dB (47.7 dB without the rate term, before quantisation)


def test_no_rate_target_without_lambda() -> None:
    assert rate_target(REP, 38, CODER, c=0.0, span=0.3) is None
    t = rate_target(REP, 38, CODER, c=1e5, span=0.3)
    assert t is not None and t.start == pytest.approx(0.7) and set(t.steps) == set(REP.tensor_names())


def test_encoder_trains_for_its_qp_but_not_under_a_bitrate() -> None:
    """The encoder's rate target is its QP's (lambda grows with the step squared), and there is none where the
    QP is chosen after training (--bitrate) or nothing is quantised (raw coders)."""
    from dataclasses import replace

    from invrcodec.codec.encoder import Encoder
    from invrcodec.types import StreamInfo

    stream = StreamInfo(24, 24, 8)
    base = EncoderConfig.from_preset("fast", device="cpu", keyint=1)
    recipe = replace(base.recipe, rate=1e5)
    cfg = replace(base, recipe=recipe)
    fine, coarse = (Encoder(stream, replace(cfg, qp=qp)).rate_target(recipe) for qp in (30, 42))
    assert fine is not None and coarse is not None
    assert coarse.lam == pytest.approx(fine.lam * 2 ** ((42 - 30) / 2))  # the step doubles every 4 QP
    assert Encoder(stream, replace(cfg, bitrate=300.0)).rate_target(recipe) is None
    assert Encoder(stream, replace(cfg, coder=EncoderConfig.from_preset("fast", coder="raw32").coder)
                   ).rate_target(recipe) is None
    assert Encoder(stream, base).rate_target(replace(recipe, rate=0.0)) is None

"""The representation against the paper's equations (2, 3, 4) and the per-axis table arithmetic."""

from __future__ import annotations

import math

import pytest
import torch

from invrcodec.net.model import INVRNet, axis_coords, encode_axis, full_encoding
from invrcodec.codec.presets import VARIANTS, make_variant
from invrcodec.types import EncodingKind, NetworkKind, Representation


def test_coordinates_follow_eq4() -> None:
    for n in (1, 7, 128):
        got = axis_coords(n)
        want = torch.tensor([2 * (i / n - 0.5) for i in range(n)], dtype=torch.float64)
        assert torch.equal(got, want)
    assert axis_coords(4).tolist() == [-1.0, -0.5, 0.0, 0.5]


def test_sinusoidal_encoding_follows_eq2() -> None:
    rep = Representation()
    p = torch.tensor([-1.0, -0.3, 0.0, 0.77], dtype=torch.float64)
    enc = encode_axis(p, 5, rep)
    assert enc.shape == (4, 10)
    for i, v in enumerate(p.tolist()):
        for k in range(5):
            arg = (1.4**k) * math.pi * v
            assert enc[i, 2 * k].item() == pytest.approx(math.sin(arg), abs=1e-6)
            assert enc[i, 2 * k + 1].item() == pytest.approx(math.cos(arg), abs=1e-6)


def test_gaussian_encoding_follows_eq3() -> None:
    rep = Representation(encoding=EncodingKind.GAUSSIAN, sigma=0.3)
    p = torch.tensor([-1.0, 0.1], dtype=torch.float64)
    enc = encode_axis(p, 4, rep)
    centres = [-1.0, -1.0 / 3, 1.0 / 3, 1.0]
    for i, v in enumerate(p.tolist()):
        for k, c in enumerate(centres):
            assert enc[i, k].item() == pytest.approx(math.exp(-((v - c) ** 2) / (2 * 0.3**2)), rel=1e-6)


def test_full_encoding_prepends_raw_coordinates_and_keeps_axis_order() -> None:
    rep = Representation(enc_dims=(2, 3, 1))
    sizes = (5, 6, 8)  # T, H, W
    t, y, x = torch.tensor([3]), torch.tensor([4]), torch.tensor([1])
    g = full_encoding(t, y, x, sizes, rep)[0]
    assert g.shape[0] == rep.in_features == 3 + 2 * (2 + 3 + 1)
    xv, yv, tv = 2 * (1 / 8 - 0.5), 2 * (4 / 6 - 0.5), 2 * (3 / 5 - 0.5)
    assert g[:3].tolist() == pytest.approx([xv, yv, tv])
    assert g[3].item() == pytest.approx(math.sin(math.pi * xv), abs=1e-6)  # phi(x) first
    assert g[3 + 4].item() == pytest.approx(math.sin(math.pi * yv), abs=1e-6)  # then phi(y)
    assert g[3 + 4 + 6 + 1].item() == pytest.approx(math.cos(math.pi * tv), abs=1e-6)  # then phi(t)


def test_paper_model_size() -> None:
    rep = VARIANTS["invr"]
    assert rep.in_features == 323
    # 4 sine layers of 128 and a linear RGB layer: ~91k parameters, 365 KB as float32, which matches the
    # paper's INVR-U sizes (12.06 MB for 34 chunks of fireworks).
    assert rep.parameter_count == 323 * 128 + 128 + 3 * (128 * 128 + 128) + 128 * 3 + 3
    net = INVRNet(rep)
    names = [n for n, _ in net.named_parameters()]
    assert names == [n for n, _ in rep.tensor_shapes()]
    assert [tuple(p.shape) for p in net.parameters()] == [s for _, s in rep.tensor_shapes()]


def test_siren_initialisation_bounds() -> None:
    torch.manual_seed(0)
    net = INVRNet(Representation())
    first = net.layers[0].weight
    assert first.abs().max() <= 1 / 323
    for layer in [*net.layers[1:], net.out]:
        assert layer.weight.abs().max() <= math.sqrt(6 / 128) / 30


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("sizes", [(3, 7, 13), (1, 16, 16), (15, 9, 4)])
def test_per_axis_tables_equal_textbook_forward(name: str, sizes: tuple[int, int, int]) -> None:
    rep = make_variant(name, hidden=32, layers=3)
    torch.manual_seed(1)
    net = INVRNet(rep).double()
    t_n, h, w = sizes
    tt, yy, xx = torch.meshgrid(torch.arange(t_n), torch.arange(h), torch.arange(w), indexing="ij")
    tt, yy, xx = tt.reshape(-1), yy.reshape(-1), xx.reshape(-1)
    batch = net.batch()
    ref = batch.forward_reference(full_encoding(tt, yy, xx, sizes, rep).double()[None])[0]
    grid = batch.forward_grid(torch.arange(t_n)[None], torch.arange(h)[None, None].expand(1, t_n, h),
                              torch.arange(w)[None, None].expand(1, t_n, w), sizes).reshape(-1, 3)
    frames = batch.forward_frames(torch.arange(t_n)[None], sizes).reshape(-1, 3)
    assert torch.allclose(grid, ref, atol=1e-9)
    assert torch.allclose(frames, ref, atol=1e-9)


@pytest.mark.parametrize("name", ["invr", "relu"])
def test_the_training_trunk_has_the_textbook_gradient(name: str) -> None:
    """forward_grid trains through the hand-differentiated sine with w0 folded into the weights; its loss
    and every weight's gradient are autograd's through ``sin(w0 * z)`` (forward_frames, the same pixels)."""
    rep = make_variant(name, hidden=16, layers=3)
    torch.manual_seed(2)
    sizes = (3, 5, 6)
    t_n, h, w = sizes
    target = torch.rand(1, t_n, h, w, 3, dtype=torch.float64)
    grads = []
    for path in ("grid", "frames"):
        torch.manual_seed(3)
        batch = INVRNet(rep).double().batch()
        if path == "grid":
            out = batch.forward_grid(torch.arange(t_n)[None], torch.arange(h)[None, None].expand(1, t_n, h),
                                     torch.arange(w)[None, None].expand(1, t_n, w), sizes)
        else:
            out = batch.forward_frames(torch.arange(t_n)[None], sizes)
        ((out - target) ** 2).mean().backward()
        grads.append([t.grad.clone() for t in batch.tensors])
    for got, want in zip(*grads):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


def test_relu_variant_has_no_sine() -> None:
    net = INVRNet(make_variant("relu"))
    z = torch.tensor([-1.0, 2.0])
    assert net.activation(z).tolist() == [0.0, 2.0]
    assert VARIANTS["relu"].network == NetworkKind.RELU

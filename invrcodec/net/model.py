"""The INVR network: per-axis positional encoding (paper eq. 2 and 3) and a SIREN or ReLU MLP.

The first layer acts on the concatenation ``[x, y, t, phi(x), phi(y), phi(t)]``, so it splits exactly into
three per-axis parts, ``W1 @ gamma = Wx @ e(x) + Wy @ e(y) + Wt @ e(t)``. For a chunk of ``T`` frames of
``H x W`` pixels only ``W + H + T`` distinct axis values exist: :func:`axis_tables` evaluates each part once
per distinct value, and a pixel's first-layer pre-activation is then the sum of three table rows. This is
the same function as the textbook forward pass (:meth:`INVRBatch.forward_reference`), at a fraction of the
multiplies. Tensor names and order follow :meth:`Representation.tensor_shapes` (spec: "Tensor order").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from invrcodec.types import EncodingKind, NetworkKind, Representation


def axis_coords(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Normalised coordinates of indices 0..n-1 on one axis, paper eq. 4: ``2 * (i / n - 0.5)``."""
    return 2.0 * (torch.arange(n, dtype=torch.float64, device=device) / n - 0.5)


def encode_axis(p: torch.Tensor, length: int, rep: Representation) -> torch.Tensor:
    """Encoding of one axis' coordinates ``p`` (shape ``(n,)``), without the raw coordinate.

    Sinusoidal (eq. 2): ``sin(sigma^k pi p), cos(sigma^k pi p)`` for k = 0..l-1, interleaved.
    Gaussian (eq. 3): ``exp(-(p - c_k)^2 / (2 sigma^2))`` with l centres ``c_k`` evenly spaced over [-1, 1].
    Computed in float64 and returned as float32, so encoder and decoder agree to the last bit.
    """
    p = p.to(torch.float64)
    if rep.encoding == EncodingKind.SINUSOIDAL:
        freqs = (rep.sigma ** torch.arange(length, dtype=torch.float64, device=p.device)) * math.pi
        arg = p[:, None] * freqs[None, :]
        return torch.stack((torch.sin(arg), torch.cos(arg)), dim=-1).reshape(p.shape[0], 2 * length).float()
    if rep.encoding == EncodingKind.GAUSSIAN:
        centres = torch.linspace(-1.0, 1.0, length, dtype=torch.float64, device=p.device)
        return torch.exp(-((p[:, None] - centres[None, :]) ** 2) / (2.0 * rep.sigma**2)).float()
    return p.new_zeros((p.shape[0], 0)).float()


def _axis_columns(rep: Representation) -> tuple[list[int], list[int], list[int]]:
    """Column indices of the first layer's weight that belong to the x, y and t axis."""
    raw = 3 if (rep.prepend_coord or rep.encoding == EncodingKind.NONE) else 0
    width = 2 if rep.encoding == EncodingKind.SINUSOIDAL else 1
    if rep.encoding == EncodingKind.NONE:
        width = 0
    cols: list[list[int]] = []
    start = raw
    for axis, length in enumerate(rep.enc_dims):
        own = [axis] if raw else []
        own += list(range(start, start + width * length))
        start += width * length
        cols.append(own)
    return cols[0], cols[1], cols[2]


def axis_features(n: int, axis: int, rep: Representation, device: torch.device | str = "cpu") -> torch.Tensor:
    """Features ``e(p)`` of one axis for all n indices, in the column order of :func:`_axis_columns`."""
    return axis_features_at(axis_coords(n, device), axis, rep)


@functools.lru_cache(maxsize=64)
def _axis_features_once(n: int, axis: int, rep: Representation, device: torch.device) -> torch.Tensor:
    """:func:`axis_features`, computed once per size, axis and representation: a training step needs the same
    three small tables every time (a few dozen float64 operations a step, otherwise). Read-only."""
    return axis_features(n, axis, rep, device)


def axis_features_at(p: torch.Tensor, axis: int, rep: Representation) -> torch.Tensor:
    """Features ``e(p)`` of one axis at arbitrary normalised positions ``p`` (float64, shape ``(n,)``).

    Positions between or beyond the pixel centres of eq. 4 sample the network off its training grid
    (spec: "Sampling at another size, time or region"); at eq. 4's positions this is :func:`axis_features`.
    """
    enc = encode_axis(p, rep.enc_dims[axis], rep)
    raw = rep.prepend_coord or rep.encoding == EncodingKind.NONE
    return torch.cat((p.float()[:, None], enc), dim=1) if raw else enc


def full_encoding(t_idx: torch.Tensor, y_idx: torch.Tensor, x_idx: torch.Tensor, sizes: tuple[int, int, int],
                  rep: Representation) -> torch.Tensor:
    """The full input vector gamma (eq. 2) for each pixel: ``[x, y, t, phi(x), phi(y), phi(t)]``."""
    t_n, h, w = sizes
    x, y, t = axis_coords(w, x_idx.device)[x_idx], axis_coords(h, y_idx.device)[y_idx], axis_coords(t_n, t_idx.device)[t_idx]
    parts = []
    if rep.prepend_coord or rep.encoding == EncodingKind.NONE:
        parts.append(torch.stack((x, y, t), dim=1).float())
    for p, length in zip((x, y, t), rep.enc_dims):
        parts.append(encode_axis(p, length, rep))
    return torch.cat(parts, dim=1)


def activate(z: torch.Tensor, siren: bool, w0: float) -> torch.Tensor:
    """``sin(w0 * z)`` for SIREN, ``relu(z)`` otherwise.

    The sine is taken in float32 even under autocast (the PSNR checks render through it): w0 * z reaches tens
    of radians. Training takes its sines in the matrix products' precision instead (:meth:`INVRBatch.train_trunk`,
    where the rounding was measured not to matter).
    """
    if siren:
        return torch.sin(w0 * z.to(torch.promote_types(z.dtype, torch.float32)))
    return torch.relu(z)


class _Sine(torch.autograd.Function):
    """``sin(a)`` whose backward pass is ``g * cos(a)``, from the argument it saved.

    With w0 folded into the layer's weights and bias, a SIREN activation in training is one elementwise pass
    forward and two back, in the matrix product's precision; autograd's ``sin(w0 * float(z))`` takes a cast,
    a scaling and a float32 sine forward and as many passes again back. On a 2-core CPU an eager training
    step so is within 12-18% of torch.compile's fused kernels (bfloat16 / float32), where autograd's was about
    1.5x slower (docs/results.md, "The whole command, eager").
    """

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a)
        return torch.sin(a)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (a,) = ctx.saved_tensors
        return torch.cos(a).mul_(g)


class _SineOfSum(torch.autograd.Function):
    """``sin(a + b)`` over the broadcast of small ``a (..., m, 1, c)`` and ``b (..., 1, n, c)``, in ``dtype``.

    The first layer's pre-activation of a training grid is such a sum (a frame's and a row's table entries, and
    a column's), and the angle-sum identity takes its sine from the sines and cosines of the small parts:
    ``sin a cos b + cos a sin b``, two multiply passes over the grid where the sum, a cast and a sine took
    three, and its backward pass ``g cos(a + b)`` likewise, with no transcendental over the grid. The phase is
    never rounded: the parts are float32, only the products are in ``dtype``.
    """

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        sa, ca, sb, cb = (v.to(dtype) for v in (torch.sin(a), torch.cos(a), torch.sin(b), torch.cos(b)))
        ctx.save_for_backward(sa, ca, sb, cb)
        ctx.dtypes = (a.dtype, b.dtype)
        out = sa.new_empty((*sa.shape[:-2], sb.shape[-2], sa.shape[-1]))  # contiguous, as the trunk reshapes it
        return torch.mul(sa, cb, out=out).addcmul_(ca, sb)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        sa, ca, sb, cb = ctx.saved_tensors
        ga = torch.mul(ca, cb, out=torch.empty_like(g)).addcmul_(sa, sb, value=-1.0).mul_(g)  # g cos(a + b)
        a_dtype, b_dtype = ctx.dtypes  # (a reduced-precision sum accumulates in float32 all the same)
        need_a, need_b, _ = ctx.needs_input_grad
        return (ga.sum(dim=-2, keepdim=True).to(a_dtype) if need_a else None,
                ga.sum(dim=-3, keepdim=True).to(b_dtype) if need_b else None, None)


def activate_(z: torch.Tensor, siren: bool, w0: float) -> None:
    """:func:`activate` in place, on a float32 ``z`` (the decoder's preallocated buffers)."""
    if siren:
        z.mul_(w0).sin_()
    else:
        z.relu_()


class INVRNet(nn.Module):
    """An MLP of ``rep.layers`` activated layers of ``rep.hidden`` units and a linear RGB output: one chunk's
    tensors (under the names of :meth:`Representation.tensor_shapes`), their initialisation and their
    first-layer tables. Its forward passes are :class:`INVRBatch`'s, as a batch of one (:meth:`batch`); the
    decoder renders from the tables (:func:`invrcodec.codec.decoder.render`).
    """

    def __init__(self, rep: Representation) -> None:
        super().__init__()
        self.rep = rep
        fan_in = rep.in_features
        self.layers = nn.ModuleList()
        for _ in range(rep.layers):
            self.layers.append(nn.Linear(fan_in, rep.hidden))
            fan_in = rep.hidden
        self.out = nn.Linear(fan_in, 3)
        self.siren = rep.network == NetworkKind.SIREN
        self.w0 = float(rep.w0)
        self.cols = _axis_columns(rep)
        if self.siren:
            self._siren_init()

    @torch.no_grad()
    def _siren_init(self) -> None:
        # Sitzmann et al. 2020, sec. 3.2: first layer U(-1/n, 1/n); later layers U(-sqrt(6/n)/w0, sqrt(6/n)/w0).
        first = self.layers[0]
        first.weight.uniform_(-1.0 / first.in_features, 1.0 / first.in_features)
        for layer in [*self.layers[1:], self.out]:
            bound = math.sqrt(6.0 / layer.in_features) / self.w0
            layer.weight.uniform_(-bound, bound)

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        return activate(z, self.siren, self.w0)

    def axis_tables(self, sizes: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First-layer pre-activation contributions per axis value; the bias is folded into the t table."""
        t_n, h, w = sizes
        dev = self.layers[0].weight.device
        return self.tables_at(axis_coords(w, dev), axis_coords(h, dev), axis_coords(t_n, dev))

    def tables_at(self, px: torch.Tensor, py: torch.Tensor, pt: torch.Tensor) -> Tables:
        """:meth:`axis_tables` at arbitrary normalised float64 positions per axis (columns, rows, times)."""
        weight, bias = self.layers[0].weight, self.layers[0].bias
        tables = []
        for axis, p in enumerate((px, py, pt)):
            feats = axis_features_at(p.to(weight.device), axis, self.rep).to(weight.dtype)
            tables.append(feats @ weight[:, self.cols[axis]].t())
        tx, ty, tt = tables
        return tx, ty, tt + bias

    def batch(self) -> INVRBatch:
        """This network as a batch of one, whose forward passes are the same arithmetic."""
        return INVRBatch.stack([self])


Tables = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class INVRBatch(nn.Module):
    """B independent :class:`INVRNet` of one representation, held and run as one module.

    Every tensor of :class:`INVRNet` gets a leading chunk dimension and every linear layer becomes one batched
    matrix product, so B small networks (one per chunk) keep a GPU as busy as one large one. The networks
    never mix: chunk b's outputs depend only on chunk b's tensors, so training the batch on the sum of the
    chunks' losses gives every chunk the gradient it would get alone. A single network is a batch of one
    (:meth:`INVRNet.batch`), which takes ``nn.Linear``'s path. Index arguments carry the chunk dimension first.
    """

    def __init__(self, rep: Representation, tensors: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.rep = rep
        self.names = [name for name, _ in rep.tensor_shapes()]  # INVRNet's names, in coded order
        self.tensors = nn.ParameterList(nn.Parameter(t) for t in tensors)
        self.siren = rep.network == NetworkKind.SIREN
        self.w0 = float(rep.w0)
        self.cols = _axis_columns(rep)

    @classmethod
    def stack(cls, nets: Sequence[INVRNet]) -> INVRBatch:
        """One batch holding copies of the given networks' tensors, in order."""
        rep = nets[0].rep
        params = [dict(net.named_parameters()) for net in nets]
        return cls(rep, [torch.stack([p[name].detach() for p in params]) for name, _ in rep.tensor_shapes()])

    @property
    def count(self) -> int:
        return self.tensors[0].shape[0]

    def select(self, keep: Sequence[int]) -> INVRBatch:
        """A new batch holding copies of chunks ``keep``'s tensors."""
        idx = torch.tensor(list(keep), device=self.tensors[0].device)
        return INVRBatch(self.rep, [t.detach().index_select(0, idx) for t in self.tensors])

    def state(self, chunk: int) -> dict[str, np.ndarray]:
        """Chunk ``chunk``'s float32 weights under :class:`INVRNet`'s names."""
        return {name: t[chunk].detach().float().cpu().numpy().copy()
                for name, t in zip(self.names, self.tensors)}

    def _weights(self, chunks: torch.Tensor | None, first: int = 0,
                 stop: int | None = None) -> list[torch.Tensor]:
        """Tensors ``first`` to ``stop``, of every chunk or of ``chunks`` (indices as a tensor, so that a
        compiled trunk sees one shape for any choice of chunks). The trunk takes only the tensors after the
        first layer: a compiled graph guards on every tensor it touches."""
        tensors = [self.tensors[i] for i in range(first, len(self.tensors) if stop is None else stop)]
        if chunks is None:
            return tensors
        return [t.index_select(0, chunks) for t in tensors]

    @staticmethod
    def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``h (B, P, in)`` through B layers; B = 1 takes nn.Linear's path (INVRNet's arithmetic)."""
        if weight.shape[0] == 1:  # squeeze, not [0]: a view's backward pass is free, a select's zero-fills
            return F.linear(h.squeeze(0), weight.squeeze(0), bias.squeeze(0)).unsqueeze(0)
        return torch.baddbmm(bias[:, None, :], h, weight.transpose(1, 2))

    def axis_tables(self, sizes: tuple[int, int, int], chunks: torch.Tensor | None = None,
                    scale: float = 1.0) -> Tables:
        """First-layer pre-activation contributions per axis value (:meth:`INVRNet.axis_tables`), bias folded
        into the t table, of every chunk (or of ``chunks``): ``(B, W, hidden)``, ``(B, H, hidden)``,
        ``(B, T, hidden)``; times ``scale`` (the weights are scaled, not the tables)."""
        t_n, h, w = sizes
        weight, bias = self._weights(chunks, 0, 2)
        if scale != 1.0:
            weight, bias = weight * scale, bias * scale
        tables = []
        for axis, n in ((0, w), (1, h), (2, t_n)):
            feats = _axis_features_once(n, axis, self.rep, weight.device).to(weight.dtype)
            part = weight[:, :, self.cols[axis]]
            if part.shape[0] == 1:
                tables.append((feats @ part[0].t())[None])
            else:
                tables.append(feats @ part.transpose(1, 2))
        tx, ty, tt = tables
        return tx, ty, tt + bias[:, None, :]

    def trunk(self, pre: torch.Tensor, chunks: torch.Tensor | None = None) -> torch.Tensor:
        """Everything after the first layer's pre-activations ``(B, ..., hidden)``, of every chunk (or of
        ``chunks``): activations, hidden layers, RGB output."""
        weights = self._weights(chunks, first=2)
        shape = pre.shape
        h = activate(pre.reshape(shape[0], -1, shape[-1]), self.siren, self.w0)
        for i in range(self.rep.layers - 1):
            h = activate(self._linear(h, weights[2 * i], weights[2 * i + 1]), self.siren, self.w0)
        return self._linear(h, weights[-2], weights[-1]).reshape(*shape[:-1], 3)

    def train_trunk(self, h: torch.Tensor) -> torch.Tensor:
        """:meth:`trunk` for training, from the first layer's activations ``h (B, ..., hidden)``: w0 folded
        into every activated layer and the sine :class:`_Sine` (SIREN only; the matrix products' precision)."""
        weights = self._weights(None, first=2)
        shape = h.shape
        h = h.reshape(shape[0], -1, shape[-1])
        for i in range(self.rep.layers - 1):
            h = _Sine.apply(self._linear(h, weights[2 * i] * self.w0, weights[2 * i + 1] * self.w0))
        return self._linear(h, weights[-2], weights[-1]).reshape(*shape[:-1], 3)

    def forward_grid(self, t_idx: torch.Tensor, y_idx: torch.Tensor, x_idx: torch.Tensor,
                     sizes: tuple[int, int, int]) -> torch.Tensor:
        """RGB for k sub-grids per chunk: frame ``t_idx[b, i]`` x rows ``y_idx[b, i]`` x columns ``x_idx[b, i]``:
        the training's forward pass.

        Shapes ``(B, k)``, ``(B, k, m)``, ``(B, k, n)`` give ``(B, k, m, n, 3)``. The first layer is a broadcast
        sum of gathered table rows, so its backward pass reduces over grid axes instead of scattering per pixel.
        For SIREN its sine is :class:`_SineOfSum` of the (frame, row) and (frame, column) parts, from float32
        tables, and the rest is :meth:`train_trunk`.
        """
        kind = self.tensors[0].device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else self.tensors[0].dtype
        if self.siren:
            with torch.autocast(kind, enabled=False):
                tx, ty, tt = self.axis_tables(sizes, scale=self.w0)
        else:
            tx, ty, tt = self.axis_tables(sizes)
        b = torch.arange(tx.shape[0], device=tx.device)
        rows = tt[b[:, None], t_idx][:, :, None, None, :] + ty[b[:, None, None], y_idx][:, :, :, None, :]
        cols = tx[b[:, None, None], x_idx][:, :, None, :, :]
        if not self.siren:
            return self.trunk(rows + cols)
        return self.train_trunk(_SineOfSum.apply(rows, cols, dtype))

    def forward_frames(self, t_idx: torch.Tensor, sizes: tuple[int, int, int],
                       chunks: torch.Tensor | None = None, tables: Tables | None = None) -> torch.Tensor:
        """Whole frames ``t_idx (B, k)`` of every chunk (or of ``chunks``): ``(B, k, H, W, 3)``."""
        tx, ty, tt = tables if tables is not None else self.axis_tables(sizes, chunks)
        b = torch.arange(tx.shape[0], device=tx.device)
        pre = tt[b[:, None], t_idx][:, :, None, None, :] + ty[:, None, :, None, :] + tx[:, None, None, :, :]
        return self.trunk(pre, chunks)

    def forward_reference(self, gamma: torch.Tensor) -> torch.Tensor:
        """The textbook forward pass on full input vectors gamma (eq. 2), the paper's arithmetic, per chunk:
        ``(B, P, in)`` -> ``(B, P, 3)``."""
        return self.trunk(self._linear(gamma, self.tensors[0], self.tensors[1]))


def to_rgb8(v: torch.Tensor) -> torch.Tensor:
    """Network output in [-1, 1] to 8-bit code values (CoordConvention.PAPER_EQ4)."""
    return torch.round((v.float().clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8)


def from_rgb8(frames: torch.Tensor) -> torch.Tensor:
    """8-bit code values to the network's [-1, 1] target range."""
    return frames.float() / 127.5 - 1.0

"""Decoding: coded chunk -> network -> frames (paper sec. 3.2), deterministic on the CPU.

Frames are rendered from the per-axis first-layer tables (see :mod:`invrcodec.net.model`) in row tiles, so
memory stays bounded for any frame size. :func:`render_reference` is the straightforward per-pixel forward
pass of the same weights, kept as the yardstick for tools/bench.py and the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from fractions import Fraction

import numpy as np
import torch

from invrcodec.coding import deepcabac
from invrcodec.net.devices import resolve_device
from invrcodec.errors import InvrConfigError, InvrFormatError
from invrcodec.net.model import INVRNet, activate_, full_encoding, to_rgb8
from invrcodec.codec.sampling import (
    Geometry,
    Region,
    Term,
    TileSpan,
    Timeline,
    chunk_terms,
    plan_geometry,
    tail_terms,
    tile_spans,
    time_position,
)
from invrcodec.codec.jobs import Weights
from invrcodec.types import CoderKind, Header, Packet, Prediction, Representation
from invrcodec.coding.weights import decode_weights
from invrcodec.format.structs import tile_tensors

log = logging.getLogger(__name__)

# Pixels per tile of render_reference: bounds activations to about TILE_PIXELS * hidden * 4 bytes per layer.
TILE_PIXELS = 1 << 16
# Pixels per tile of render (whole rows). Small enough that a tile's two activation buffers
# (RENDER_TILE_PIXELS * hidden * 4 bytes each) stay near the CPU caches, large enough that each matrix
# product keeps all cores busy.
RENDER_TILE_PIXELS = 1 << 13


def build_network(rep: Representation, state: dict[str, np.ndarray], device: torch.device) -> INVRNet:
    """An :class:`INVRNet` holding exactly the given float32 weights."""
    net = INVRNet(rep)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(state[name])))
    return net.to(device).eval()


@torch.inference_mode()
def render(net: INVRNet, sizes: tuple[int, int, int], start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames ``start..stop`` of a chunk of ``sizes = (T, H, W)`` as uint8 ``(n, H, W, 3)``.

    The same arithmetic as :meth:`INVRBatch.forward_frames` and :func:`invrcodec.net.model.to_rgb8`, tile by tile
    into two preallocated activation buffers: the first layer is a broadcast sum of table rows, every later
    layer one ``addmm`` into the other buffer, and scaling, sine and code-value rounding run in place.
    """
    t_n = sizes[0]
    stop = t_n if stop is None else stop
    tx, ty, tt = net.axis_tables(sizes)
    return _render_tables(net, tx, ty, tt[start:stop], raw=False)


@torch.inference_mode()
def render_at(net: INVRNet, xs: np.ndarray, ys: np.ndarray, ts: np.ndarray, raw: bool = False) -> np.ndarray:
    """The network at normalised positions: frames at times ``ts``, rows ``ys``, columns ``xs`` (float64).

    uint8 ``(len(ts), len(ys), len(xs), 3)``, or with ``raw`` the float32 network outputs before clamping
    and rounding (for mixing two chunks). Only the pixels asked for are computed; at eq. 4's positions the
    bytes are :func:`render`'s. :mod:`invrcodec.codec.sampling` says which positions an output size, crop or frame
    rate asks for.
    """
    tx, ty, tt = net.tables_at(*(torch.from_numpy(np.asarray(p, dtype=np.float64)) for p in (xs, ys, ts)))
    return _render_tables(net, tx, ty, tt, raw=raw)


def _render_tables(net: INVRNet, tx: torch.Tensor, ty: torch.Tensor, tt: torch.Tensor,
                   raw: bool) -> np.ndarray:
    """Every (t, y, x) of the tables' rows through the rest of the network, in row tiles."""
    h, w = ty.shape[0], tx.shape[0]
    dev, hidden = tx.device, tx.shape[1]
    layers = [(layer.weight.t(), layer.bias) for layer in net.layers[1:]]
    out_w, out_b = net.out.weight.t(), net.out.bias
    rows = max(1, min(h, RENDER_TILE_PIXELS // w))
    cur = torch.empty((rows * w, hidden), device=dev)
    nxt = torch.empty_like(cur)
    rgb = torch.empty((rows * w, 3), device=dev)
    out = np.empty((tt.shape[0], h, w, 3), dtype=np.float32 if raw else np.uint8)
    dst = torch.from_numpy(out)
    for i in range(tt.shape[0]):
        frame_rows = tt[i][None, :] + ty  # (H, hidden): forward_frames' tt[t] + ty[y], before + tx[x]
        for y0 in range(0, h, rows):
            r = min(rows, h - y0)
            n = r * w
            a, b = cur[:n], nxt[:n]
            torch.add(frame_rows[y0:y0 + r, None, :], tx[None, :, :], out=a.view(r, w, hidden))
            activate_(a, net.siren, net.w0)
            for weight_t, bias in layers:
                torch.addmm(bias, a, weight_t, out=b)
                activate_(b, net.siren, net.w0)
                a, b = b, a
            code = torch.addmm(out_b, a, out_w, out=rgb[:n])
            if not raw:
                code.clamp_(-1.0, 1.0).add_(1.0).mul_(127.5).round_()
            dst[i, y0:y0 + r].copy_(code.view(r, w, 3))
    return out


def _mix(parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """Weighted sum of raw network outputs, then :func:`invrcodec.net.model.to_rgb8`'s arithmetic."""
    acc = torch.zeros(parts[0][1].shape, dtype=torch.float32)
    for weight, raw in parts:
        acc.add_(torch.from_numpy(raw), alpha=weight)
    return acc.clamp_(-1.0, 1.0).add_(1.0).mul_(127.5).round_().to(torch.uint8).numpy()


@torch.no_grad()
def render_reference(net: INVRNet, sizes: tuple[int, int, int], start: int = 0,
                     stop: int | None = None) -> np.ndarray:
    """The same frames through the textbook per-pixel pass: encode every pixel (eq. 2), run the MLP."""
    t_n, h, w = sizes
    stop = t_n if stop is None else stop
    dev = next(net.parameters()).device
    batch = net.batch()
    out = np.empty((stop - start, h, w, 3), dtype=np.uint8)
    yy, xx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    yy, xx = yy.reshape(-1), xx.reshape(-1)
    for i, t in enumerate(range(start, stop)):
        rgb = torch.empty((h * w, 3), device=dev)
        for p0 in range(0, h * w, TILE_PIXELS):
            sl = slice(p0, p0 + TILE_PIXELS)
            tt = torch.full_like(yy[sl], t)
            rgb[sl] = batch.forward_reference(full_encoding(tt, yy[sl], xx[sl], sizes, net.rep)[None])[0]
        out[i] = to_rgb8(rgb).reshape(h, w, 3).cpu().numpy()
    return out


class Decoder:
    """Turns packets of one .invr stream into RGB frames, PyAV style: ``decode(packet) -> frames``."""

    def __init__(self, header: Header, device: str | torch.device = "cpu") -> None:
        self.header = header
        self.tiles = header.tile_list()
        self.device = resolve_device(device)
        self.tiles_decoded = 0  # networks decoded so far (a crop decodes only the tiles it touches)
        # The reconstruction of the chunk decoded last, per tile (None: a tile not decoded), for a next P-chunk.
        self._last: tuple[int, tuple[Weights | None, ...]] | None = None
        written = header.coder.nncodec_version
        if header.coder.kind == CoderKind.DEEPCABAC and written.split(".")[0] != deepcabac.version().split(".")[0]:
            log.warning("file written with nncodec %s, decoding with %s", written, deepcabac.version())

    def weights(self, packet: Packet, tiles: Collection[int] | None = None) -> tuple[Weights | None, ...]:
        """The chunk's reconstructed float32 weights per tile (equal to the encoder's, bit for bit); only
        ``tiles`` (default: all), the others None.

        A P-chunk adds its coded residual to the weights of the chunk before it, which must be the chunk
        this decoder reconstructed last (packets in order from a key chunk, as ``demux`` yields them), with
        the same tiles.
        """
        rep, wanted = self.header.representation, range(len(self.tiles)) if tiles is None else tiles
        parts = tile_tensors(packet, self.header)
        previous: tuple[Weights | None, ...] = (None,) * len(self.tiles)
        if packet.prediction == Prediction.PREVIOUS:
            if self._last is None or self._last[0] != packet.index - 1:
                raise InvrFormatError(f"chunk {packet.index}: predicted from chunk {packet.index - 1}, "
                                      "which was not decoded before it")
            previous = self._last[1]
        out: list[Weights | None] = [None] * len(self.tiles)
        for k in wanted:
            if packet.prediction == Prediction.PREVIOUS and previous[k] is None:
                raise InvrFormatError(f"chunk {packet.index}: tile {k} is predicted from a tile not decoded")
            out[k] = decode_weights(parts[k], rep, self.header.coder, previous[k])
            self.tiles_decoded += 1
        self._last = (packet.index, tuple(out))
        return self._last[1]

    def networks(self, packet: Packet, tiles: Collection[int] | None = None) -> list[INVRNet | None]:
        """The chunk's network per tile (only ``tiles``, default all; the others None)."""
        rep = self.header.representation
        return [None if w is None else build_network(rep, w, self.device) for w in self.weights(packet, tiles)]

    def network(self, packet: Packet) -> INVRNet:
        """The chunk's network, for a file without tiles."""
        if len(self.tiles) != 1:
            raise InvrConfigError("a tiled chunk has a network per tile: use networks()")
        net = self.networks(packet)[0]
        assert net is not None
        return net

    def sampler(self, packet: Packet, geometry: Geometry) -> ChunkSampler:
        """The chunk sampled on ``geometry``: only the tiles it touches are decoded."""
        spans = tile_spans(geometry, self.tiles)
        nets = self.networks(packet, [span.tile for span in spans])
        return ChunkSampler(nets, packet.frame_count, geometry, spans)

    def frames(self, packet: Packet, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``[start, stop)`` of the chunk at the stored size, one at a time (memory: one frame)."""
        stop = packet.frame_count if stop is None else stop
        s = self.header.stream
        sampler = self.sampler(packet, plan_geometry(s.width, s.height))  # the tables once, render()'s bytes
        for i in range(start, stop):
            yield sampler.frame(Fraction(i))

    def decode(self, packet: Packet, start: int = 0, stop: int | None = None, *,
               size: tuple[int, int] | None = None, scale: Fraction | float | None = None,
               region: Region | tuple[int, int, int, int] | None = None,
               times: Sequence[Fraction | float] | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` of the packet's chunk (relative to its first frame), uint8 ``(n, H, W, 3)``.

        ``size=(W, H)`` or ``scale`` renders at another size, ``region=(w, h, x, y)`` only that rectangle of
        source pixels (see :func:`invrcodec.codec.sampling.plan_geometry`); ``times`` (frame positions relative to
        the chunk's first frame, fractions allowed) replaces ``start`` and ``stop``.
        """
        stop = packet.frame_count if stop is None else stop
        if not 0 <= start <= stop <= packet.frame_count:
            raise InvrConfigError(f"frame range {start}..{stop} outside chunk of {packet.frame_count} frames")
        s = self.header.stream
        if size is None and scale is None and region is None and times is None and len(self.tiles) == 1:
            return render(self.network(packet), (packet.frame_count, s.height, s.width), start, stop)
        geometry = plan_geometry(s.width, s.height, size=size, scale=scale, region=region)
        offsets = [Fraction(k) for k in range(start, stop)] if times is None else [Fraction(t) for t in times]
        sampler = self.sampler(packet, geometry)
        out = np.empty((len(offsets), geometry.height, geometry.width, 3), dtype=np.uint8)
        for i, offset in enumerate(offsets):
            out[i] = sampler.frame(offset)
        return out


class ChunkSampler:
    """One chunk's networks sampled on an output :class:`~invrcodec.codec.sampling.Geometry`, one frame at a
    time: each tile's network over the output pixels it draws (``spans``; default: one network, the frame).

    The x, y and stored-frame tables are computed once, over the same axes as :func:`render` (so stored
    frames of the identity geometry are its bytes); an instant between stored frames gets its own t row.
    """

    def __init__(self, nets: INVRNet | Sequence[INVRNet | None], frame_count: int, geometry: Geometry,
                 spans: Sequence[TileSpan] | None = None) -> None:
        nets = [nets] if isinstance(nets, INVRNet) else list(nets)
        if spans is None:
            spans = [TileSpan(0, 0, geometry.width, 0, geometry.height, geometry.columns(), geometry.rows())]
        self.frame_count, self.height, self.width = frame_count, geometry.height, geometry.width
        whole = torch.from_numpy(np.array([time_position(Fraction(k), frame_count) for k in range(frame_count)]))
        first = spans[0] if spans else None
        # One network drawing the whole output (a file without tiles, or a crop inside one tile).
        self.whole = len(spans) == 1 and first is not None and (first.col1 - first.col0, first.row1 - first.row0) \
            == (geometry.width, geometry.height)
        self.parts = []
        for span in spans:
            net = nets[span.tile]
            assert net is not None
            tx, ty, tt = net.tables_at(torch.from_numpy(span.xs), torch.from_numpy(span.ys), whole)
            self.parts.append((span, net, tx, ty, tt))
        # Tiles that overlap: each output pixel a sum of weighted outputs, each span's weights computed once.
        self.weights = [_weights(span) if span.blended else None for span in spans]

    @torch.inference_mode()
    def frame(self, offset: Fraction, raw: bool = False) -> np.ndarray:
        """The frame at ``offset`` frames after the chunk's first, uint8 ``(H, W, 3)`` (``raw``: float32
        network outputs)."""
        stored = offset.denominator == 1 and 0 <= offset < self.frame_count
        t = torch.tensor([time_position(offset, self.frame_count)], dtype=torch.float64)
        none = torch.zeros(0, dtype=torch.float64)
        if self.whole:
            _, net, tx, ty, tt = self.parts[0]
            row = tt[int(offset)][None] if stored else net.tables_at(none, none, t)[2]
            return _render_tables(net, tx, ty, row, raw)[0]
        blended = any(w is not None for w in self.weights)
        out = np.zeros((self.height, self.width, 3), dtype=np.float32 if raw or blended else np.uint8)
        for (span, net, tx, ty, tt), weight in zip(self.parts, self.weights):
            row = tt[int(offset)][None] if stored else net.tables_at(none, none, t)[2]
            part = _render_tables(net, tx, ty, row, raw or blended)[0]
            where = (slice(span.row0, span.row1), slice(span.col0, span.col1))
            if not blended:
                out[where] = part
                continue
            if weight is not None:  # its share of the pixels it shares with a neighbour (spec "Tiles")
                part *= weight
            out[where] += part
        return out if raw or not blended else _mix([(1.0, out)])


def _weights(span: TileSpan) -> np.ndarray:
    """A blended span's weight per output pixel, float32 ``(rows, columns, 1)``."""
    wy = np.ones(span.row1 - span.row0) if span.wy is None else span.wy
    wx = np.ones(span.col1 - span.col0) if span.wx is None else span.wx
    return (wy[:, None] * wx[None, :]).astype(np.float32)[:, :, None]


def decode_resampled(decoder: Decoder, packets: Iterable[Packet], geometry: Geometry,
                     timeline: Timeline) -> Iterator[np.ndarray]:
    """The frames of ``timeline`` on ``geometry``, from ``packets`` in stream order (as ``demux`` yields
    them); each packet's network is built once, in order. An instant between two chunks' stored frames is
    made as ``timeline.boundary`` says (spec: "Sampling at another size, time or region")."""
    n = 0
    needed = [span.tile for span in tile_spans(geometry, decoder.tiles)]
    prev: tuple[ChunkSampler, int] | None = None  # the previous chunk's sampler and its end frame
    for packet in packets:
        if packet.first_frame + packet.frame_count <= timeline.first_frame:
            decoder.weights(packet, needed)  # before the range: only the reference of the chunks after it
            continue
        cur = decoder.sampler(packet, geometry)
        adjacent = prev[0].frame_count if prev is not None and prev[1] == packet.first_frame else None
        samplers = {0: cur, -1: prev[0] if prev is not None else cur}
        for n, terms in chunk_terms(timeline, n, packet.first_frame, packet.frame_count, adjacent,
                                    timeline.frame_count):
            yield _made_of(samplers, terms)
            n += 1
        prev = (cur, packet.first_frame + packet.frame_count)
    if prev is not None:
        for n, terms in tail_terms(timeline, n, prev[1], prev[0].frame_count, timeline.frame_count):
            yield _made_of({-1: prev[0]}, terms)


def _made_of(samplers: dict[int, ChunkSampler], terms: tuple[Term, ...]) -> np.ndarray:
    """One output frame: a single network evaluation, or the weighted mix of two."""
    if len(terms) == 1 and terms[0].weight == 1:
        return samplers[terms[0].which].frame(terms[0].offset)
    return _mix([(float(t.weight), samplers[t.which].frame(t.offset, raw=True)) for t in terms])

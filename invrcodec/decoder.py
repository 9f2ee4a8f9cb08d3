"""Decoding: coded chunk -> network -> frames (paper sec. 3.2), deterministic on the CPU.

Frames are rendered from the per-axis first-layer tables (see :mod:`invrcodec.model`) in row tiles, so
memory stays bounded for any frame size. :func:`render_reference` is the straightforward per-pixel forward
pass of the same weights, kept as the yardstick for tools/bench.py and the tests.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from invrcodec import deepcabac
from invrcodec.errors import InvrConfigError
from invrcodec.model import INVRNet, full_encoding, to_rgb8
from invrcodec.types import CoderKind, Header, Packet, Representation
from invrcodec.weights import decode_weights

log = logging.getLogger(__name__)

# Pixels per tile of render_reference: bounds activations to about TILE_PIXELS * hidden * 4 bytes per layer.
TILE_PIXELS = 1 << 16
# Pixels per tile of render (whole rows). Small enough that a tile's two activation buffers
# (RENDER_TILE_PIXELS * hidden * 4 bytes each) stay near the CPU caches, large enough that each matrix
# product keeps all cores busy.
RENDER_TILE_PIXELS = 1 << 13


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU; ``cuda[:N]`` is checked."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InvrConfigError(f"unknown device {name!r} (use auto, cpu or cuda[:N])") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvrConfigError(f"device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvrConfigError(f"device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise InvrConfigError(f"unsupported device {name!r} (use auto, cpu or cuda[:N])")
    return dev


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

    The same arithmetic as :meth:`INVRNet.forward_grid` and :func:`invrcodec.model.to_rgb8`, tile by tile
    into two preallocated activation buffers: the first layer is a broadcast sum of table rows, every later
    layer one ``addmm`` into the other buffer, and scaling, sine and code-value rounding run in place.
    """
    t_n, h, w = sizes
    stop = t_n if stop is None else stop
    tx, ty, tt = net.axis_tables(sizes)
    dev, hidden = tx.device, tx.shape[1]
    layers = [(layer.weight.t(), layer.bias) for layer in net.layers[1:]]
    out_w, out_b = net.out.weight.t(), net.out.bias
    rows = max(1, min(h, RENDER_TILE_PIXELS // w))
    cur = torch.empty((rows * w, hidden), device=dev)
    nxt = torch.empty_like(cur)
    rgb = torch.empty((rows * w, 3), device=dev)
    out = np.empty((stop - start, h, w, 3), dtype=np.uint8)
    dst = torch.from_numpy(out)
    for i, t in enumerate(range(start, stop)):
        frame_rows = tt[t][None, :] + ty  # (H, hidden): forward_grid's tt[t] + ty[y], before + tx[x]
        for y0 in range(0, h, rows):
            r = min(rows, h - y0)
            n = r * w
            a, b = cur[:n], nxt[:n]
            torch.add(frame_rows[y0:y0 + r, None, :], tx[None, :, :], out=a.view(r, w, hidden))
            _activate_(net, a)
            for weight_t, bias in layers:
                torch.addmm(bias, a, weight_t, out=b)
                _activate_(net, b)
                a, b = b, a
            code = torch.addmm(out_b, a, out_w, out=rgb[:n])
            code.clamp_(-1.0, 1.0).add_(1.0).mul_(127.5).round_()
            dst[i, y0:y0 + r].copy_(code.view(r, w, 3))
    return out


def _activate_(net: INVRNet, z: torch.Tensor) -> None:
    """:meth:`INVRNet.activation` in place: ``sin(w0 * z)`` for SIREN, ``relu(z)`` otherwise."""
    if net.siren:
        z.mul_(net.w0).sin_()
    else:
        z.relu_()


@torch.no_grad()
def render_reference(net: INVRNet, sizes: tuple[int, int, int], start: int = 0,
                     stop: int | None = None) -> np.ndarray:
    """The same frames through the textbook per-pixel pass: encode every pixel (eq. 2), run the MLP."""
    t_n, h, w = sizes
    stop = t_n if stop is None else stop
    dev = next(net.parameters()).device
    out = np.empty((stop - start, h, w, 3), dtype=np.uint8)
    yy, xx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    yy, xx = yy.reshape(-1), xx.reshape(-1)
    for i, t in enumerate(range(start, stop)):
        rgb = torch.empty((h * w, 3), device=dev)
        for p0 in range(0, h * w, TILE_PIXELS):
            sl = slice(p0, p0 + TILE_PIXELS)
            tt = torch.full_like(yy[sl], t)
            rgb[sl] = net.forward_reference(full_encoding(tt, yy[sl], xx[sl], sizes, net.rep))
        out[i] = to_rgb8(rgb).reshape(h, w, 3).cpu().numpy()
    return out


class Decoder:
    """Turns packets of one .invr stream into RGB frames, PyAV style: ``decode(packet) -> frames``."""

    def __init__(self, header: Header, device: str | torch.device = "cpu") -> None:
        self.header = header
        self.device = resolve_device(device)
        written = header.coder.nncodec_version
        if header.coder.kind == CoderKind.DEEPCABAC and written.split(".")[0] != deepcabac.version().split(".")[0]:
            log.warning("file written with nncodec %s, decoding with %s", written, deepcabac.version())

    def weights(self, packet: Packet) -> dict[str, np.ndarray]:
        """The chunk's reconstructed float32 weights (equal to the encoder's, bit for bit)."""
        return decode_weights(packet.tensors, self.header.representation, self.header.coder)

    def network(self, packet: Packet) -> INVRNet:
        return build_network(self.header.representation, self.weights(packet), self.device)

    def decode(self, packet: Packet, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` of the packet's chunk (relative to its first frame), uint8 ``(n, H, W, 3)``."""
        stop = packet.frame_count if stop is None else stop
        if not 0 <= start <= stop <= packet.frame_count:
            raise InvrConfigError(f"frame range {start}..{stop} outside chunk of {packet.frame_count} frames")
        s = self.header.stream
        return render(self.network(packet), (packet.frame_count, s.height, s.width), start, stop)

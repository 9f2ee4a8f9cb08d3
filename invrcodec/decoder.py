"""Decoding: coded chunk -> network -> frames (paper sec. 3.2), deterministic on the CPU.

Frames are rendered from the per-axis first-layer tables (see :mod:`invrcodec.model`) in row tiles, so
memory stays bounded for any frame size. :func:`render_reference` is the straightforward per-pixel forward
pass of the same weights, kept as the yardstick for tools/bench.py and the tests.
"""

from __future__ import annotations

import numpy as np
import torch

from invrcodec.errors import InvrConfigError
from invrcodec.model import INVRNet, full_encoding, to_rgb8
from invrcodec.types import Header, Packet, Representation
from invrcodec.weights import decode_weights

# Pixels per inference tile: bounds activations to about TILE_PIXELS * hidden * 4 bytes per layer.
TILE_PIXELS = 1 << 16


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


@torch.no_grad()
def render(net: INVRNet, sizes: tuple[int, int, int], start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames ``start..stop`` of a chunk of ``sizes = (T, H, W)`` as uint8 ``(n, H, W, 3)``."""
    t_n, h, w = sizes
    stop = t_n if stop is None else stop
    tables = net.axis_tables(sizes)
    dev = tables[0].device
    rows = max(1, min(h, TILE_PIXELS // w))
    out = np.empty((stop - start, h, w, 3), dtype=np.uint8)
    cols = torch.arange(w, device=dev)[None, :]
    for i, t in enumerate(range(start, stop)):
        t_idx = torch.tensor([t], device=dev)
        for y0 in range(0, h, rows):
            y_idx = torch.arange(y0, min(h, y0 + rows), device=dev)[None, :]
            rgb = net.forward_grid(t_idx, y_idx, cols, sizes, tables)[0]
            out[i, y0:y0 + y_idx.shape[1]] = to_rgb8(rgb).cpu().numpy()
    return out


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

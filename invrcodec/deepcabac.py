"""The only module that touches nncodec: DeepCABAC quantisation and entropy coding of one tensor.

One tensor is one DeepCABAC bitstream (spec: "DeepCABAC tensor payload"); its QP is stored beside it by the
container, not inside the stream. Uses ``nncodec.extensions.deepCABAC`` alone, which builds without any of
nncodec's declared Python dependencies.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np

from invrcodec.errors import InvrError

try:
    from nncodec.extensions import deepCABAC as _dc
except ImportError as exc:  # pragma: no cover - depends on the installation
    _dc = None
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

def _lib():
    if _dc is None:
        raise InvrError(
            "DeepCABAC is not available: install nncodec with `pip install --no-deps nncodec` "
            f"({_IMPORT_ERROR})"
        )
    return _dc


def version() -> str:
    """Version of the installed nncodec (recorded in every DeepCABAC-coded file)."""
    try:
        return importlib.metadata.version("nncodec")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def step_size(qp: int, qp_density: int) -> float:
    """Quantiser step of a QP: ``(2^d + (qp mod 2^d)) * 2^(floor(qp / 2^d) - d)`` with d = qp_density."""
    k = 1 << qp_density
    return float((k + (qp & (k - 1))) * 2.0 ** ((qp >> qp_density) - qp_density))


def _hdsp_off():
    lib = _lib()
    return lib.HdspMode.AlwaysOff, np.zeros(2, dtype=np.int8)


def quantize(w: np.ndarray, qp: int, qp_density: int, dq: bool, unary_len: int) -> np.ndarray:
    """Integer levels of ``w`` (float32) at ``qp``; dependent (trellis) quantisation when ``dq``."""
    lib = _lib()
    w = np.ascontiguousarray(w, dtype=np.float32)
    levels = np.zeros(w.shape, dtype=np.int32)
    enc = lib.Encoder()
    enc.initCtxModels(unary_len, 0)
    used = enc.quantLayer(w, levels, int(dq), qp_density, qp, 0.0, unary_len, 0, 0)
    if used != qp:
        raise InvrError(f"DeepCABAC clipped QP {qp} to {used}: choose a coarser QP")
    return levels


def dequantize(levels: np.ndarray, qp: int, qp_density: int) -> np.ndarray:
    """Reconstructed float32 weights of integer levels: the decoder's exact values."""
    lib = _lib()
    out = np.zeros(levels.shape, dtype=np.float32)
    lib.Decoder().dequantLayer(out, np.ascontiguousarray(levels, dtype=np.int32), qp_density, qp, 0)
    return out


def encode_levels(levels: np.ndarray, dq: bool, unary_len: int) -> bytes:
    """DeepCABAC bitstream of one tensor's integer levels."""
    lib = _lib()
    levels = np.ascontiguousarray(levels, dtype=np.int32)
    rows = levels.shape[0] if levels.ndim else 1
    enc = lib.Encoder()
    enc.initCtxModels(unary_len + 1, 0)
    mode, hdsp = _hdsp_off()
    enc.encodeLayer(levels, int(dq), 0, 0, 0, 0, np.zeros(rows, dtype=np.int32), mode, hdsp, 0, 0)
    return enc.finish().tobytes()


# The arithmetic decoder may read a few bytes past the end of the stream it was handed; padding keeps those
# reads inside our own buffer whatever the (CRC-checked) stream length.
_READ_PADDING = 64


def decode_levels(data: bytes, shape: tuple[int, ...], dq: bool, unary_len: int) -> np.ndarray:
    """Integer levels of one tensor from its DeepCABAC bitstream."""
    lib = _lib()
    levels = np.zeros(shape, dtype=np.int32)
    stream = np.frombuffer(bytes(data) + bytes(_READ_PADDING), dtype=np.uint8).copy()
    dec = lib.Decoder()
    dec.setStream(stream)
    dec.initCtxModels(unary_len + 1)
    mode, hdsp = _hdsp_off()
    dec.decodeLayer(levels, int(dq), 0, 0, 0, mode, hdsp, 0, 0)
    dec.finish()
    return levels

"""The only module that touches nncodec: DeepCABAC quantisation and entropy coding of one tensor.

One tensor is one DeepCABAC bitstream (spec: "DeepCABAC tensor payload"); its QP is stored beside it by the
container, not inside the stream. Uses ``nncodec.extensions.deepCABAC`` alone, which builds without any of
nncodec's declared Python dependencies.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from invrcodec.errors import InvrError, MalformedError
from invrcodec.format.rules import RULE_LIMITS, qp_range

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
    check_qp(qp, qp_density)
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
    """Reconstructed float32 weights of integer levels: the decoder's exact values.

    A QP or qp_density outside the spec's limits raises :class:`MalformedError` before nncodec sees it:
    its integer arithmetic gives negative, zero or infinite steps there (spec "Field rules").
    """
    check_qp(qp, qp_density)
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



# --- decoding untrusted streams (spec "Field rules", "DeepCABAC tensor payload") -------------------------
#
# Measured with nncodec 2.1.3 (tests/test_deepcabac_limits.py repeats the measurements):
# - qp_density: dequantLayer computes 1 << qp_density in 32-bit integers; 31 gives negative steps and 32 or
#   more undefined shifts (garbage, 0 or inf). The spec allows NNR's 3-bit range 0..7 (rules.RULE_LIMITS).
# - QP: the step is a float32 power of two times 1..2; it is 0 below 2^-149 and inf from 2^128, and a level of
#   2^31 - 1 overflows from a step of 2^97. The spec keeps steps in [2^-126, 2^32) (rules.qp_range): normal,
#   and every level times its step finite.
# - cabac_unary_length_minus1: every value 0..255 round-trips; a stream decoded with another value than it
#   was written with fails to terminate (a RuntimeError, wrapped below).
# - the arithmetic decoder has no end-of-buffer check: it reads whatever follows the stream (below: zeros we
#   own), and terminateCabacDecoding() prints "No proper stop/alignment pattern" to stdout, not an error.

def check_qp(qp: int, qp_density: int) -> None:
    """Refuse a qp_density or QP whose step nncodec cannot represent (MalformedError; spec "Field rules")."""
    top = int(RULE_LIMITS["max_qp_density"])
    if not 0 <= qp_density <= top:
        raise MalformedError(f"qp_density {qp_density} not in 0..{top}")
    lo, hi = qp_range(qp_density)
    if not lo <= qp <= hi:
        raise MalformedError(f"qp {qp} not in {lo}..{hi} for qp_density {qp_density}")


# Bytes nncodec's decoder can consume per weight, from CABACDecoder::decodeWeightVal: at most one byte per
# context-coded bin (significance, sign, up to unary_len + 1 greater-than flags, up to 31 exponent flags) and
# five for the up-to-31-bit escape suffix; plus one per row and a few for start and termination.
_BINS_PER_WEIGHT = 2 + 31 + 5


def _stream_buffer(data: bytes, shape: tuple[int, ...], unary_len: int) -> np.ndarray:
    """``data`` followed by enough zero bytes that no stream, however crafted, makes the decoder read past it.

    The padding is address space, not memory: np.zeros takes fresh zero pages from the OS and the decoder
    only reads them.
    """
    numel = int(np.prod(shape, dtype=np.int64))
    rows = shape[0] if shape else 1
    pad = 64 + rows + numel * (unary_len + 1 + _BINS_PER_WEIGHT)
    try:
        buf = np.zeros(len(data) + pad, dtype=np.uint8)
    except MemoryError as exc:
        raise InvrError(f"a tensor of {numel} weights needs {pad} bytes of address space to decode") from exc
    buf[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return buf


_SINK: list[BinaryIO] = []  # one scratch file per process for _captured_stdout, made on first use
_SINK_LOCK = threading.Lock()  # file descriptor 1 is the process's: one capture at a time


@contextlib.contextmanager
def _captured_stdout() -> Iterator[list[bytes]]:
    """Yields a list that afterwards holds what C++ code wrote to file descriptor 1 meanwhile (nncodec
    prints a warning there, which would corrupt a Y4M stream on stdout). sys.stdout is flushed first."""
    got: list[bytes] = []
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stdout.flush()
    with _SINK_LOCK:
        try:
            if not _SINK:
                _SINK.append(tempfile.TemporaryFile())  # noqa: SIM115 - lives as long as the process
            sink = _SINK[0]
            sink.seek(0)
            sink.truncate()
            saved = os.dup(1)
        except OSError:  # no stdout or no scratch file: nothing to protect, or no way to
            yield got
            return
        try:
            os.dup2(sink.fileno(), 1)
            yield got
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            got.append(sink.read())


def _one_line(exc: BaseException) -> str:
    """nncodec's multi-line 'ERROR: In function "f" in file.cpp:587: Terminating Bin not received!' as
    'terminating bin not received'."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    if text.startswith("ERROR: In function"):
        text = text.rsplit(": ", 1)[-1]
    return text.rstrip("!.").lower() or type(exc).__name__


def decode_levels(data: bytes, shape: tuple[int, ...], dq: bool, unary_len: int) -> np.ndarray:
    """Integer levels of one tensor from its DeepCABAC bitstream.

    The stream must decode to exactly ``shape`` and end exactly at its last byte with nncodec's stop
    pattern; anything else, whatever nncodec does with it, raises :class:`MalformedError` in one line.
    """
    if not 0 <= unary_len <= 255:
        raise MalformedError(f"cabac_unary_length_minus1 {unary_len} out of range 0..255")
    if len(data) < 2:
        raise MalformedError(f"DeepCABAC stream of {len(data)} bytes is shorter than its 2-byte start")
    lib = _lib()
    levels = np.zeros(shape, dtype=np.int32)
    stream = _stream_buffer(bytes(data), shape, unary_len)
    dec = lib.Decoder()
    mode, hdsp = _hdsp_off()
    try:
        dec.setStream(stream)
        dec.initCtxModels(unary_len + 1)
        dec.decodeLayer(levels, int(dq), 0, 0, 0, mode, hdsp, 0, 0)
        with _captured_stdout() as said:
            used = dec.finish()
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise MalformedError(f"DeepCABAC stream does not decode to shape {shape} ({_one_line(exc)})") from exc
    if said and said[0].strip():
        raise MalformedError(f"DeepCABAC stream of {len(data)} bytes has no stop pattern at its end")
    if used != len(data):
        raise MalformedError(f"DeepCABAC stream of {len(data)} bytes ends after {used} for shape {shape}")
    return levels

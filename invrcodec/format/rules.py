"""Field rules: values a reader MUST refuse although they fit their bytes (spec "Field rules").

The byte layout (:mod:`invrcodec.format.structs`) admits every value of a field's type and its CRC vouches only that
the bytes arrived as written; whoever writes a file can write a correct CRC. These checks refuse the values
that no encoder writes and no decoder can use: non-finite or absurd floats, coder parameters outside what
nncodec computes correctly, QPs whose step is not a normal float32, chunk fields that disagree with the
header. Pure Python: like the format layer, this module imports neither torch nor nncodec; the check that
a chunk's DeepCABAC streams decode is :mod:`invrcodec.coding.payload`'s.

Each rule is one entry of :data:`RULES` under the name the spec's "Field rules" table gives it
(tests/test_spec.py keeps the two in agreement), so a new field's rule is one more function and one more row.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from invrcodec.errors import MalformedError
from invrcodec.types import CoderKind, EncodingKind, Header, Packet

__all__ = ["RULES", "RULE_LIMITS", "check_header", "check_packet", "qp_range"]

RULE_LIMITS: dict[str, float] = {
    "min_w0": 2.0**-16,  # Representation.w0 in [min_w0, max_w0]: SIREN's initial bound divides by w0
    "max_w0": 65536.0,
    "min_sigma": 2.0**-16,
    "max_sigma": 2.0**16,
    "max_frequency_log2": 64,  # SINUSOIDAL: sigma^(l - 1) <= 2^64 on every axis
    "max_qp_density": 7,  # NNR's 3-bit field; nncodec's steps turn negative at 31
    "min_step_log2": -126,  # floor(qp / 2^qp_density) >= -126: every step a normal float32
    "max_step_log2": 31,  # floor(qp / 2^qp_density) <= 31: step < 2^32, |level * step| < 2^63
}


def qp_range(qp_density: int) -> tuple[int, int]:
    """The lawful QPs of a DeepCABAC tensor: floor(qp / 2^d) in min_step_log2 .. max_step_log2."""
    k = 1 << qp_density
    return int(RULE_LIMITS["min_step_log2"]) * k, (int(RULE_LIMITS["max_step_log2"]) + 1) * k - 1


def _refuse(ok: bool, message: str, offset: int | None) -> None:
    if not ok:
        raise MalformedError(message, offset)


# --- header rules (each takes the header and the byte offset of its body) --------------------------------


def _w0(h: Header, offset: int | None) -> None:
    w0, lo, hi = h.representation.w0, RULE_LIMITS["min_w0"], RULE_LIMITS["max_w0"]
    _refuse(math.isfinite(w0) and lo <= w0 <= hi, f"header: w0 {w0!r} not in [2^-16, 2^16]", offset)


def _sigma(h: Header, offset: int | None) -> None:
    r = h.representation
    lo, hi = RULE_LIMITS["min_sigma"], RULE_LIMITS["max_sigma"]
    _refuse(math.isfinite(r.sigma) and lo <= r.sigma <= hi, f"header: sigma {r.sigma!r} not in [2^-16, 2^16]",
            offset)
    if r.encoding == EncodingKind.SINUSOIDAL:
        top = int(RULE_LIMITS["max_frequency_log2"])
        for axis, length in zip("xyt", r.enc_dims):
            _refuse(
                length < 2 or (length - 1) * math.log2(r.sigma) <= top,
                f"header: sigma {r.sigma:g} with l_{axis} = {length}: highest frequency sigma^{length - 1} "
                f"exceeds 2^{top}",
                offset,
            )


def _coder(h: Header, offset: int | None) -> None:
    k = h.coder  # raw coders ignore the DeepCABAC fields (writers put 0 there, API users the defaults)
    if k.kind == CoderKind.DEEPCABAC:
        top = int(RULE_LIMITS["max_qp_density"])
        _refuse(0 <= k.qp_density <= top, f"header: qp_density {k.qp_density} not in 0..{top}", offset)


HeaderRule = Callable[[Header, "int | None"], None]
PacketRule = Callable[[Packet, Header, str, "int | None"], None]


# --- chunk rules (each takes the packet, the header, the chunk's name and its byte offset) -------------


def _tensor_qps(p: Packet, h: Header, what: str, offset: int | None) -> None:
    if h.coder.kind != CoderKind.DEEPCABAC:  # raw coders ignore the QP
        return
    lo, hi = qp_range(h.coder.qp_density)
    for t, (name, _) in zip(p.tensors, h.representation.tensor_shapes()):
        _refuse(lo <= t.qp <= hi, f"{what}: tensor {name}: qp {t.qp} not in {lo}..{hi} for qp_density "
                f"{h.coder.qp_density}", offset)
        _refuse(len(t.data) >= 2, f"{what}: tensor {name}: a DeepCABAC stream of {len(t.data)} bytes "
                "(at least 2)", offset)


RULES: dict[str, HeaderRule | PacketRule] = {
    "w0": _w0,
    "sigma": _sigma,
    "coder parameters": _coder,
    "tensor qp": _tensor_qps,
}
_HEADER_RULES: tuple[HeaderRule, ...] = (_w0, _sigma, _coder)
_PACKET_RULES: tuple[PacketRule, ...] = (_tensor_qps,)


def check_header(header: Header, offset: int | None = None) -> None:
    """Refuse a header that breaks a field rule (MalformedError naming the field and the lawful range)."""
    for rule in _HEADER_RULES:
        rule(header, offset)


def check_packet(packet: Packet, header: Header, what: str, offset: int | None = None) -> None:
    """Refuse a chunk whose fields break a rule for a stream with ``header``. The tensor count and raw sizes
    are :func:`invrcodec.format.structs.check_packet`'s; call that first."""
    for rule in _PACKET_RULES:
        rule(packet, header, what, offset)

"""Field rules: values a reader MUST refuse although they fit their bytes (spec "Field rules").

The byte layout (:mod:`invrcodec.format.structs`) admits every value of a field's type and its CRC vouches only that
the bytes arrived as written; whoever writes a file can write a correct CRC. These checks refuse the values
that no encoder writes and no decoder can use: non-finite or absurd floats, coder parameters outside what
nncodec computes correctly, QPs whose step is not a normal float32, chunk fields that disagree with the
header, tile grids that do not cut the frame into a bounded number of tiles or whose tiles overlap more than
they can hold, audio streams and packets that no muxer could take.
Pure Python: like the format layer, this module imports neither torch nor nncodec; the check that
a chunk's DeepCABAC streams decode is :mod:`invrcodec.coding.payload`'s.

Each rule is one entry of :data:`RULES` under the name the spec's "Field rules" table gives it
(tests/test_spec.py keeps the two in agreement), so a new field's rule is one more function and one more row.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from invrcodec.errors import MalformedError
from invrcodec.format import structs as fmt
from invrcodec.types import AudioPacket, AudioStreamInfo, CoderKind, EncodingKind, Header, Packet

__all__ = [
    "RULES",
    "RULE_LIMITS",
    "check_audio_packets",
    "check_audio_stream",
    "check_header",
    "check_packet",
    "check_tiles",
    "qp_range",
]

RULE_LIMITS: dict[str, float] = {
    "min_w0": 2.0**-16,  # Representation.w0 in [min_w0, max_w0]: SIREN's initial bound divides by w0
    "max_w0": 65536.0,
    "min_sigma": 2.0**-16,
    "max_sigma": 2.0**16,
    "max_frequency_log2": 64,  # SINUSOIDAL: sigma^(l - 1) <= 2^64 on every axis
    "max_qp_density": 7,  # NNR's 3-bit field; nncodec's steps turn negative at 31
    "min_step_log2": -126,  # floor(qp / 2^qp_density) >= -126: every step a normal float32
    "max_step_log2": 31,  # floor(qp / 2^qp_density) <= 31: step < 2^32, |level * step| < 2^63
    "max_codec_name": 32,  # bytes of AudioStream.codec (FFmpeg's longest codec names have 25)
    "max_sample_rate": 2**22,  # AudioStream.sample_rate (DSD64 is 2822400 Hz)
    "max_channels": 255,  # AudioStream.channels
    "max_time_base_term": 2**31 - 1,  # AudioStream time base terms: FFmpeg's AVRational holds an int
    "max_extradata": 2**18,  # bytes of AudioStream.extradata (Vorbis' headers, the largest, take a few KiB)
    "max_audio_packet": 2**24,  # bytes of one AudioPacket.data
    "max_audio_timestamp": 2**62,  # |pts|, |dts| and pts + duration of an AudioPacket, in ticks
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


def _grid_is_lawful(h: Header) -> bool:
    """Whether the header has a tile grid that passes the "tile grid" rule (the rules after it judge no
    other)."""
    g, s = h.tiles, h.stream
    return (g is not None and 1 <= g.tile_width <= s.width and 1 <= g.tile_height <= s.height
            and g.count(s.width, s.height) <= fmt.LIMITS["max_tiles"])


def _tile_grid(h: Header, offset: int | None) -> None:
    g, s = h.tiles, h.stream
    if g is None:  # a 1.x or 2.x file: the whole frame is one tile
        return
    _refuse(1 <= g.tile_width <= s.width,
            f"header: tile_width {g.tile_width} not in 1..{s.width} (the width)", offset)
    _refuse(1 <= g.tile_height <= s.height,
            f"header: tile_height {g.tile_height} not in 1..{s.height} (the height)", offset)
    n, top = g.count(s.width, s.height), fmt.LIMITS["max_tiles"]
    _refuse(n <= top, f"header: {n} tiles of {g.tile_width}x{g.tile_height} in {s.width}x{s.height} "
            f"(at most {top})", offset)


def _tile_parameters(h: Header, offset: int | None) -> None:
    g, s = h.tiles, h.stream
    if g is None or not (1 <= g.tile_width <= s.width and 1 <= g.tile_height <= s.height):
        return  # no grid, or one the "tile grid" rule refuses
    n, per, top = g.count(s.width, s.height), h.representation.parameter_count, fmt.LIMITS["max_parameters"]
    _refuse(n * per <= top, f"header: {n} tiles of {per} parameters are {n * per} per chunk (at most {top})",
            offset)


def _tile_overlap(h: Header, offset: int | None) -> None:
    g, s = h.tiles, h.stream
    if g is None or not _grid_is_lawful(h):
        return  # no grid, or one the "tile grid" rule refuses
    _refuse(g.overlap >= 0, f"header: overlap {g.overlap} is negative", offset)  # only an API user's
    if g.overlap_fits(s.width, s.height):  # the blends stay apart (always so in a 3.x file: overlap 0)
        return
    raise MalformedError(f"header: overlap {g.overlap} of tiles {g.tile_width}x{g.tile_height} in "
                         f"{s.width}x{s.height}: at most {g.largest_overlap(s.width, s.height)} (half the "
                         "narrowest tile)", offset)


HeaderRule = Callable[[Header, "int | None"], None]
PacketRule = Callable[[Packet, Header, str, "int | None"], None]


# --- chunk rules (each takes the packet, the header, the chunk's name and its byte offset) -------------


def _tensor_qps(p: Packet, h: Header, what: str, offset: int | None) -> None:
    if h.coder.kind != CoderKind.DEEPCABAC:  # raw coders ignore the QP
        return
    lo, hi = qp_range(h.coder.qp_density)
    for i, t in enumerate(p.tensors):  # every tile's (structs.check_packet has counted them)
        if not lo <= t.qp <= hi:
            raise MalformedError(f"{what}: {fmt.tensor_label(h, i)}: qp {t.qp} not in {lo}..{hi} for "
                                 f"qp_density {h.coder.qp_density}", offset)
        if len(t.data) < 2:
            raise MalformedError(f"{what}: {fmt.tensor_label(h, i)}: a DeepCABAC stream of {len(t.data)} "
                                 "bytes (at least 2)", offset)


# --- audio rules (2.1) -----------------------------------------------------------------------------------

_CODEC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _audio_stream(a: AudioStreamInfo, what: str, offset: int | None) -> None:
    lim = RULE_LIMITS
    top = int(lim["max_codec_name"])
    _refuse(1 <= len(a.codec) <= top and set(a.codec) <= _CODEC_CHARS,
            f"{what}: codec name {a.codec[:40]!r} is not 1..{top} of a-z, 0-9, _", offset)
    _refuse(1 <= a.sample_rate <= lim["max_sample_rate"],
            f"{what}: sample_rate {a.sample_rate} not in 1..{int(lim['max_sample_rate'])}", offset)
    _refuse(1 <= a.channels <= lim["max_channels"],
            f"{what}: channels {a.channels} not in 1..{int(lim['max_channels'])}", offset)
    _refuse(all(0x20 <= ord(ch) < 0x7F for ch in a.channel_layout),
            f"{what}: channel_layout {a.channel_layout[:40]!r} is not printable ASCII", offset)
    term = int(lim["max_time_base_term"])
    tb = a.time_base
    _refuse(0 < tb.numerator <= term and 0 < tb.denominator <= term,
            f"{what}: time base {tb} has terms beyond 1..{term}", offset)
    _refuse(len(a.extradata) <= lim["max_extradata"],
            f"{what}: {len(a.extradata)} bytes of extradata (at most {int(lim['max_extradata'])})", offset)


def _audio_packets(packets: tuple[AudioPacket, ...], streams: int, what: str, offset: int | None) -> None:
    top_size, top_ts = int(RULE_LIMITS["max_audio_packet"]), int(RULE_LIMITS["max_audio_timestamp"])
    for i, p in enumerate(packets):
        _refuse(0 <= p.stream < streams, f"{what}: audio stream {p.stream}, the header declares {streams}",
                offset)
        _refuse(1 <= len(p.data) <= top_size, f"{what}: packet {i}: {len(p.data)} bytes (1..{top_size})",
                offset)
        _refuse(
            abs(p.pts) <= top_ts and abs(p.dts) <= top_ts and 0 <= p.duration <= top_ts - p.pts,
            f"{what}: packet {i}: pts {p.pts}, dts {p.dts}, duration {p.duration} beyond +-2^62", offset,
        )


def _audio_timestamps(packets: tuple[AudioPacket, ...], last_dts: int | None, what: str,
                      offset: int | None) -> None:
    for i, p in enumerate(packets):
        _refuse(last_dts is None or p.dts >= last_dts,
                f"{what}: packet {i}: dts {p.dts} before the previous packet's {last_dts}", offset)
        last_dts = p.dts


RULES: dict[str, Callable[..., None]] = {
    "w0": _w0,
    "sigma": _sigma,
    "coder parameters": _coder,
    "tile grid": _tile_grid,
    "tile parameters": _tile_parameters,
    "tile overlap": _tile_overlap,
    "tensor qp": _tensor_qps,
    "audio stream": _audio_stream,
    "audio packets": _audio_packets,
    "audio timestamps": _audio_timestamps,
}
_HEADER_RULES: tuple[HeaderRule, ...] = (_w0, _sigma, _coder, _tile_grid, _tile_parameters, _tile_overlap)
_PACKET_RULES: tuple[PacketRule, ...] = (_tensor_qps,)


def check_header(header: Header, offset: int | None = None) -> None:
    """Refuse a header that breaks a field rule (MalformedError naming the field and the lawful range)."""
    for rule in _HEADER_RULES:
        rule(header, offset)


def check_tiles(header: Header, offset: int | None = None) -> None:
    """Refuse a tile grid that breaks the "tile grid", "tile parameters" or "tile overlap" rule: what a writer
    checks before it writes a header (a reader checks every rule, :func:`check_header`)."""
    _tile_grid(header, offset)
    _tile_parameters(header, offset)
    _tile_overlap(header, offset)


def check_packet(packet: Packet, header: Header, what: str, offset: int | None = None) -> None:
    """Refuse a chunk whose fields break a rule for a stream with ``header``. The tensor count and raw sizes
    are :func:`invrcodec.format.structs.check_packet`'s; call that first."""
    for rule in _PACKET_RULES:
        rule(packet, header, what, offset)


def check_audio_stream(stream: AudioStreamInfo, what: str, offset: int | None = None) -> None:
    """Refuse an audio stream that no muxer could take (codec name, rate, channels, time base, extradata)."""
    _audio_stream(stream, what, offset)


def check_audio_packets(packets: tuple[AudioPacket, ...], streams: int, last_dts: int | None, what: str,
                        offset: int | None = None) -> int | None:
    """Refuse packets (of one stream, in file order) that break a rule; ``last_dts`` is the dts of the
    stream's packet before them (None for its first). Returns the dts of the last of them."""
    _audio_packets(packets, streams, what, offset)
    _audio_timestamps(packets, last_dts, what, offset)
    return packets[-1].dts if packets else last_dts

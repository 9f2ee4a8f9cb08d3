"""The .invr container, declared with construct (spec/invr-format.md).

This module declares every byte structure of the format and converts between them and the frozen
dataclass views of :mod:`invrcodec.types`; no construct ``Container`` leaves it. It performs no I/O: the
:mod:`invrcodec.format.muxer` and :mod:`invrcodec.format.demuxer` are the only readers and writers of .invr bytes, and they
call the pure ``build_*`` / ``parse_*`` functions below. It imports neither torch nor nncodec.

Layout (spec "File layout")::

    Preamble | header body | header CRC32 | CHNK record * n | INDX record | TAIL record

with, from version 2.1, AUDP records (a source's audio packets) between them and an AIDX record (their index)
right after the last CHNK record; the audio streams are declared by AUDS extensions of the header body. A
version 3 file cuts the frame into tiles (spec "Tiles"): its header body holds a TileGrid after the
representation, and each chunk holds every tile's tensors, tile after tile. A version 4 file's grid adds the
tiles' overlap (HeaderBodyV4, TileGridV4): each tile's network reaches that many pixels into its neighbours,
where a decoder blends them.

Every structure's name here is the heading of its byte table in the spec; tests/test_spec.py keeps the two in
agreement.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import construct as c
from construct import this

from invrcodec.errors import ChecksumError, InvrFormatError, MalformedError
from invrcodec.types import (
    AudioIndexEntry,
    AudioPacket,
    AudioStreamInfo,
    CodedTensor,
    CoderKind,
    CoderParams,
    CoordConvention,
    EncodingKind,
    Header,
    IndexEntry,
    Metadata,
    NetworkKind,
    Packet,
    Prediction,
    Representation,
    StreamInfo,
    TileGrid,
)

__all__ = [
    "LIMITS",
    "MAGIC",
    "MAJOR",
    "MAJOR_OVERLAP",
    "MAJOR_TILES",
    "MINOR",
    "MINOR_OVERLAP",
    "MINOR_TILES",
    "NEWEST_MINOR",
    "READABLE_MAJORS",
    "STRUCTS",
    "Extension",
    "Preamble",
    "Record",
    "audio_streams",
    "build_audio_body",
    "build_audio_index_body",
    "build_audio_stream",
    "build_chunk_body",
    "build_header",
    "build_index_body",
    "build_record",
    "build_trailer_body",
    "check_packet",
    "chunk_overhead",
    "check_record_length",
    "crc32",
    "file_version",
    "tensor_count",
    "tensor_label",
    "tile_count",
    "tile_tensors",
    "parse_audio_body",
    "parse_audio_index_body",
    "parse_audio_stream",
    "parse_chunk_body",
    "parse_header_body",
    "parse_index_body",
    "parse_preamble",
    "parse_record",
    "parse_record_head",
    "parse_trailer_body",
    "patch_frame_count",
    "validate_header",
    "verify_header",
]

# --- constants (spec "Preamble", "Records", "Limits") ---------------------------------------------------

MAGIC = b"INVR\r\n\x1a\n"
MAJOR = 2  # the major of a file without a tile grid: written as a 2.x writer writes it, byte for byte
MINOR = 1  # the newest minor of major 2 this code reads and writes; a file without audio is written as 2.0
MINOR_AUDIO = 1  # the minor that added audio (AUDS, AUDP, AIDX)
MAJOR_TILES = 3  # a file with a tile grid whose tiles do not overlap (spec "Tiles"): 2.1 and its audio, tiled
MINOR_TILES = 0  # the newest minor of major 3; a 3.0 file has audio or not without another minor
MAJOR_OVERLAP = 4  # a file whose tiles overlap (spec "Tiles"): 3.0 with the overlap in its grid
MINOR_OVERLAP = 0  # the newest minor of major 4
READABLE_MAJORS = (1, 2, 3, 4)  # a 1.x file is a 2.0 file without P-chunks (spec "Version 1 files")
# per major: a newer minor is read, its additions skipped
NEWEST_MINOR = {1: 0, 2: MINOR, 3: MINOR_TILES, 4: MINOR_OVERLAP}

TAG_CHUNK = b"CHNK"
TAG_INDEX = b"INDX"
TAG_TRAILER = b"TAIL"
TAG_AUDIO = b"AUDP"  # audio packets of one stream (2.1)
TAG_AUDIO_INDEX = b"AIDX"  # where the AUDP records are (2.1)
EXT_AUDIO_STREAM = b"AUDS"  # header extension: one audio stream (2.1)

PREAMBLE_SIZE = 16
HEADER_CRC_SIZE = 4
RECORD_HEAD_SIZE = 8  # tag + length
RECORD_OVERHEAD = 12  # tag + length + CRC32
TRAILER_BODY_SIZE = 8
TRAILER_SIZE = RECORD_OVERHEAD + TRAILER_BODY_SIZE  # 20
FRAME_COUNT_OFFSET = PREAMBLE_SIZE + 8  # byte offset of StreamInfo.frame_count in the file

LIMITS: dict[str, int] = {
    "max_header_length": 1 << 20,  # bytes of header body
    "max_record_length": 1 << 28,  # bytes of one record body
    "max_dimension": 65535,  # width, height
    "max_hidden": 16384,
    "max_layers": 64,
    "max_enc_dim": 4096,  # each of l_x, l_y, l_t
    "max_chunk_frames": 65535,
    "max_parameters": 1 << 25,  # weights per chunk, every tile's (raw float32: 128 MiB, < max_record_length)
    "max_tiles": 1 << 16,  # tiles of a frame (3.x, 4.x): each chunk holds one network per tile
}

# --- the Structs (one per byte table in the spec) -------------------------------------------------------


def crc32(data: bytes) -> int:
    """CRC-32 of ISO-HDLC / zlib / PNG (polynomial 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF)."""
    return zlib.crc32(data) & 0xFFFFFFFF


PREAMBLE = c.Struct(
    "magic" / c.Const(MAGIC),
    "major" / c.Int16ul,
    "minor" / c.Int16ul,
    "header_length" / c.Int32ul,
)


def _preamble_bytes(ctx: Any) -> bytes:
    return bytes(PREAMBLE.build({"major": ctx.major, "minor": ctx.minor, "header_length": ctx.header_length}))


FILE_HEADER = c.Struct(
    "magic" / c.Const(MAGIC),
    "major" / c.Int16ul,
    "minor" / c.Int16ul,
    "header_length" / c.Rebuild(c.Int32ul, c.len_(this.body)),
    "body" / c.Bytes(this.header_length),
    "crc32" / c.Checksum(c.Int32ul, crc32, lambda ctx: _preamble_bytes(ctx) + ctx.body),
)

STREAM_INFO = c.Struct(
    "width" / c.Int32ul,
    "height" / c.Int32ul,
    "frame_count" / c.Int32ul,
    "frame_rate_num" / c.Int32ul,
    "frame_rate_den" / c.Int32ul,
    "time_base_num" / c.Int32ul,
    "time_base_den" / c.Int32ul,
    "sar_num" / c.Int32ul,
    "sar_den" / c.Int32ul,
    "duration" / c.Int64ul,
    "color_range" / c.Int8ul,
    "color_space" / c.Int8ul,
    "color_primaries" / c.Int8ul,
    "color_trc" / c.Int8ul,
    "pix_fmt" / c.PascalString(c.Int8ul, "ascii"),
)

REPRESENTATION = c.Struct(
    "network" / c.Int8ul,
    "encoding" / c.Int8ul,
    "coords" / c.Int8ul,
    "prepend_coord" / c.Int8ul,
    "hidden" / c.Int32ul,
    "layers" / c.Int16ul,
    "lx" / c.Int16ul,
    "ly" / c.Int16ul,
    "lt" / c.Int16ul,
    "chunk_frames" / c.Int32ul,
    "w0" / c.Float64l,
    "sigma" / c.Float64l,
)

CODER_PARAMS = c.Struct(
    "kind" / c.Int8ul,
    "qp_density" / c.Int8ul,
    "dependent_quantization" / c.Int8ul,
    "cabac_unary_length_minus1" / c.Int8ul,
    "nncodec_version" / c.PascalString(c.Int8ul, "ascii"),
)

METADATA = c.Struct(
    "encoder" / c.PascalString(c.Int16ul, "utf8"),
    "settings" / c.PascalString(c.Int16ul, "utf8"),
)

EXTENSION = c.Struct(
    "tag" / c.Bytes(4),
    "length" / c.Rebuild(c.Int32ul, c.len_(this.value)),
    "value" / c.Bytes(this.length),
)

HEADER_BODY = c.Struct(  # of a 1.x or 2.x file
    "stream" / STREAM_INFO,
    "representation" / REPRESENTATION,
    "coder" / CODER_PARAMS,
    "metadata" / METADATA,
    "extensions" / c.GreedyRange(EXTENSION),
    c.Terminated,
)

TILE_GRID = c.Struct(
    "tile_width" / c.Int32ul,
    "tile_height" / c.Int32ul,
)

# Version 3 (spec "Tiles"): HeaderBody with the tile grid after the representation.
HEADER_BODY_V3 = c.Struct(
    "stream" / STREAM_INFO,
    "representation" / REPRESENTATION,
    "tiles" / TILE_GRID,
    "coder" / CODER_PARAMS,
    "metadata" / METADATA,
    "extensions" / c.GreedyRange(EXTENSION),
    c.Terminated,
)

TILE_GRID_V4 = c.Struct(
    "tile_width" / c.Int32ul,
    "tile_height" / c.Int32ul,
    "overlap" / c.Int32ul,
)

# Version 4 (spec "Tiles"): HeaderBodyV3 with a grid that carries the tiles' overlap.
HEADER_BODY_V4 = c.Struct(
    "stream" / STREAM_INFO,
    "representation" / REPRESENTATION,
    "tiles" / TILE_GRID_V4,
    "coder" / CODER_PARAMS,
    "metadata" / METADATA,
    "extensions" / c.GreedyRange(EXTENSION),
    c.Terminated,
)

RECORD_HEAD = c.Struct(
    "tag" / c.Bytes(4),
    "length" / c.Int32ul,
)

RECORD = c.Struct(
    "tag" / c.Bytes(4),
    "length" / c.Rebuild(c.Int32ul, c.len_(this.body)),
    "body" / c.Bytes(this.length),
    "crc32" / c.Checksum(c.Int32ul, crc32, lambda ctx: RECORD_HEAD.build(ctx) + ctx.body),
)

CODED_TENSOR = c.Struct(
    "qp" / c.Int32sl,
    "length" / c.Rebuild(c.Int32ul, c.len_(this.data)),
    "data" / c.Bytes(this.length),
)

CHUNK_BODY = c.Struct(
    "index" / c.Int32ul,
    "first_frame" / c.Int32ul,
    "frame_count" / c.Int32ul,
    "train_psnr" / c.Float64l,
    "prediction" / c.Int8ul,
    "tensor_count" / c.Rebuild(c.Int32ul, c.len_(this.tensors)),
    "tensors" / c.Array(this.tensor_count, CODED_TENSOR),
    "extensions" / c.GreedyRange(EXTENSION),
    c.Terminated,
)

INDEX_ENTRY = c.Struct(
    "first_frame" / c.Int32ul,
    "frame_count" / c.Int32ul,
    "offset" / c.Int64ul,
    "size" / c.Int32ul,
    "crc32" / c.Int32ul,
    "train_psnr" / c.Float64l,
    "prediction" / c.Int8ul,
)

INDEX_BODY = c.Struct(
    "entry_count" / c.Rebuild(c.Int32ul, c.len_(this.entries)),
    "entries" / c.Array(this.entry_count, INDEX_ENTRY),
    c.Terminated,
)

CHUNK_FIXED_SIZE = 25  # ChunkBody bytes before its tensors (spec "ChunkBody")
CODED_TENSOR_FIXED_SIZE = 8  # CodedTensor bytes before its data


def chunk_overhead(tensor_count: int) -> int:
    """Bytes a chunk of ``tensor_count`` tensors costs besides their data (spec "Overhead"): its record framing
    and fixed fields, each tensor's QP and length, and its index entry. A chunk of a tiled file has
    :func:`tensor_count` of its header: every tile's tensors."""
    return RECORD_OVERHEAD + CHUNK_FIXED_SIZE + CODED_TENSOR_FIXED_SIZE * tensor_count + INDEX_ENTRY.sizeof()


# Version 1 (spec "Version 1 files"): the same records without the prediction byte.
CHUNK_BODY_V1 = c.Struct(*[sc for sc in CHUNK_BODY.subcons if sc.name != "prediction"])
INDEX_ENTRY_V1 = c.Struct(*[sc for sc in INDEX_ENTRY.subcons if sc.name != "prediction"])
INDEX_BODY_V1 = c.Struct(
    "entry_count" / c.Rebuild(c.Int32ul, c.len_(this.entries)),
    "entries" / c.Array(this.entry_count, INDEX_ENTRY_V1),
    c.Terminated,
)

TRAILER_BODY = c.Struct(
    "index_offset" / c.Int64ul,
)

# Audio (2.1): the source's compressed packets, copied as they are.
AUDIO_STREAM = c.Struct(
    "codec" / c.PascalString(c.Int8ul, "ascii"),
    "sample_rate" / c.Int32ul,
    "channels" / c.Int16ul,
    "channel_layout" / c.PascalString(c.Int8ul, "ascii"),
    "time_base_num" / c.Int32ul,
    "time_base_den" / c.Int32ul,
    "frame_size" / c.Int32ul,
    "bit_rate" / c.Int32ul,
    "extradata_length" / c.Rebuild(c.Int32ul, c.len_(this.extradata)),
    "extradata" / c.Bytes(this.extradata_length),
    "extensions" / c.GreedyRange(EXTENSION),
    c.Terminated,
)

AUDIO_PACKET = c.Struct(
    "pts" / c.Int64sl,
    "dts" / c.Int64sl,
    "duration" / c.Int32ul,
    "flags" / c.Int8ul,
    "length" / c.Rebuild(c.Int32ul, c.len_(this.data)),
    "data" / c.Bytes(this.length),
)

AUDIO_PACKETS_BODY = c.Struct(
    "stream" / c.Int8ul,
    "packet_count" / c.Rebuild(c.Int32ul, c.len_(this.packets)),
    "packets" / c.Array(this.packet_count, AUDIO_PACKET),
    "extensions" / c.GreedyRange(EXTENSION),
    c.Terminated,
)

AUDIO_INDEX_ENTRY = c.Struct(
    "offset" / c.Int64ul,
    "size" / c.Int32ul,
    "crc32" / c.Int32ul,
    "stream" / c.Int8ul,
    "packet_count" / c.Int32ul,
    "first_dts" / c.Int64sl,
    "last_dts" / c.Int64sl,
    "start" / c.Int64sl,
    "end" / c.Int64sl,
)

AUDIO_INDEX_BODY = c.Struct(
    "entry_count" / c.Rebuild(c.Int32ul, c.len_(this.entries)),
    "entries" / c.Array(this.entry_count, AUDIO_INDEX_ENTRY),
    c.Terminated,
)

AUDIO_PACKET_FIXED_SIZE = 25  # AudioPacket bytes before its data
AUDIO_BODY_FIXED_SIZE = 5  # AudioPacketsBody bytes before its packets
AUDIO_FLAG_KEY = 0x01
AUDIO_FLAG_DISCARD = 0x02

#: Every Struct under the name of its byte table in spec/invr-format.md.
STRUCTS: dict[str, c.Construct] = {
    "Preamble": PREAMBLE,
    "FileHeader": FILE_HEADER,
    "HeaderBody": HEADER_BODY,
    "HeaderBodyV3": HEADER_BODY_V3,
    "HeaderBodyV4": HEADER_BODY_V4,
    "StreamInfo": STREAM_INFO,
    "Representation": REPRESENTATION,
    "TileGrid": TILE_GRID,
    "TileGridV4": TILE_GRID_V4,
    "CoderParams": CODER_PARAMS,
    "Metadata": METADATA,
    "Extension": EXTENSION,
    "Record": RECORD,
    "ChunkBody": CHUNK_BODY,
    "CodedTensor": CODED_TENSOR,
    "IndexBody": INDEX_BODY,
    "IndexEntry": INDEX_ENTRY,
    "TrailerBody": TRAILER_BODY,
    "ChunkBodyV1": CHUNK_BODY_V1,
    "IndexBodyV1": INDEX_BODY_V1,
    "IndexEntryV1": INDEX_ENTRY_V1,
    "AudioStream": AUDIO_STREAM,
    "AudioPacketsBody": AUDIO_PACKETS_BODY,
    "AudioPacket": AUDIO_PACKET,
    "AudioIndexBody": AUDIO_INDEX_BODY,
    "AudioIndexEntry": AUDIO_INDEX_ENTRY,
}

# --- format-internal views ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preamble:
    """The 16 bytes that never change between versions."""

    major: int
    minor: int
    header_length: int


@dataclass(frozen=True)
class Extension:
    """A type-length-value extension record (spec "Extension"); readers skip tags they do not know."""

    tag: bytes
    value: bytes


@dataclass(frozen=True)
class Record:
    """One framed record after the header: its tag, its body and the CRC32 that covered it."""

    tag: bytes
    body: bytes
    crc32: int


# --- helpers --------------------------------------------------------------------------------------------

_T = TypeVar("_T")


def _parse(struct: c.Construct, data: bytes, what: str, offset: int) -> Any:
    """Parse ``data`` with ``struct``; whatever goes wrong becomes a MalformedError naming ``what``."""
    try:
        return struct.parse(data)
    except InvrFormatError:
        raise
    except c.ChecksumError as e:
        raise ChecksumError(f"{what}: checksum mismatch", offset) from e
    except Exception as e:  # construct, struct, UnicodeDecodeError, ...: all mean malformed bytes
        raise MalformedError(f"{what}: malformed at byte {offset}: {_field(e)}{_short(e)}", offset) from e


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


def _field(e: BaseException) -> str:
    """``tiles.overlap: `` for a construct error in that field of the structure parsed (its path), else
    ``""``."""
    path = getattr(e, "path", None)
    names = [p.strip() for p in path.split("->")[1:]] if isinstance(path, str) else []
    return f"{'.'.join(names)}: " if names else ""


def _build(struct: c.Construct, obj: Any, what: str) -> bytes:
    try:
        return bytes(struct.build(obj))
    except InvrFormatError:
        raise
    except Exception as e:
        raise MalformedError(f"{what}: cannot be written: {_short(e)}") from e


def _enum(kind: Callable[[int], _T], value: int, what: str, offset: int) -> _T:
    try:
        return kind(value)
    except ValueError as e:
        raise MalformedError(f"{what}: unknown id {value}", offset) from e


def _check(ok: bool, message: str, offset: int | None) -> None:
    if not ok:
        raise MalformedError(message, offset)


def _in_range(name: str, value: int, lo: int, hi: int, offset: int | None) -> None:
    _check(lo <= value <= hi, f"header: {name} {value} out of range {lo}..{hi}", offset)


def _duration_units(stream: StreamInfo) -> int:
    """The header's ``duration`` field: frame_count / frame_rate in time_base units, rounded half up."""
    if stream.frame_count == 0 or stream.frame_rate <= 0 or stream.time_base <= 0:
        return 0
    units = Fraction(stream.frame_count) / stream.frame_rate / stream.time_base
    return min(math.floor(units + Fraction(1, 2)), (1 << 64) - 1)


# --- the views' fields (one declaration each, used both ways) ------------------------------------------


@dataclass(frozen=True)
class _Field:
    """How one attribute of a :mod:`invrcodec.types` view is stored: the Struct fields that hold it, what goes
    into them (``store``) and what is read back, checked (``load``; ``what`` and ``offset`` for messages)."""

    attr: str | None  # None: stored from the whole view, never read back (a derived field)
    names: tuple[str, ...]
    store: Callable[[Any], tuple[Any, ...]]
    load: Callable[[tuple[Any, ...], str, int | None], Any] | None = None


def _plain(attr: str, kind: Callable[[Any], Any] = lambda v: v) -> _Field:
    """Stored as it is (``kind`` normalises it both ways: ``float``, ``bytes``)."""
    return _Field(attr, (attr,), lambda v: (kind(v),), lambda raw, what, offset: kind(raw[0]))


def _id(attr: str, enum: Callable[[int], Any], label: str | None = None, default: int | None = None) -> _Field:
    """An IntEnum stored as its numeric id; an unknown id is refused. ``default``: the id of a file version
    that lacks the field."""

    def load(raw: tuple[Any, ...], what: str, offset: int | None) -> Any:
        value = default if raw[0] is None else raw[0]
        return _enum(enum, value, f"{what}: {label or attr}", offset or 0)

    return _Field(attr, (attr,), lambda v: (int(v),), load)


def _flag(attr: str) -> _Field:
    """A bool stored as one byte, 0 or 1; any other value is refused."""

    def load(raw: tuple[Any, ...], what: str, offset: int | None) -> bool:
        _check(raw[0] in (0, 1), f"{what}: {attr}: flag must be 0 or 1, not {raw[0]}", offset)
        return bool(raw[0])

    return _Field(attr, (attr,), lambda v: (int(bool(v)),), load)


def _ratio(attr: str, prefix: str, *, positive: bool) -> _Field:
    """A Fraction stored as ``prefix``_num / ``prefix``_den; ``positive``: neither may be 0, else only the
    denominator may not."""

    def load(raw: tuple[Any, ...], what: str, offset: int | None) -> Fraction:
        num, den = raw
        if positive:
            _check(num != 0 and den != 0, f"{what}: {attr} must be > 0", offset)
        else:
            _check(den != 0, f"{what}: {attr} denominator is 0", offset)
        return Fraction(num, den)

    def store(v: Any) -> tuple[int, int]:
        q = Fraction(v)
        return q.numerator, q.denominator

    return _Field(attr, (f"{prefix}_num", f"{prefix}_den"), store, load)


def _split(attr: str, names: tuple[str, ...]) -> _Field:
    """A tuple stored as one field per item."""
    return _Field(attr, names, tuple, lambda raw, what, offset: tuple(raw))


def _derived(name: str, value: Callable[[Any], Any]) -> _Field:
    """A field computed from the whole view when written, and not read back."""
    return _Field(None, (name,), lambda view: (value(view),))


def _store(fields: tuple[_Field, ...], view: Any) -> dict[str, Any]:
    """The Struct values of ``view``."""
    out: dict[str, Any] = {}
    for f in fields:
        out.update(zip(f.names, f.store(view if f.attr is None else getattr(view, f.attr))))
    return out


def _load(fields: tuple[_Field, ...], values: Any, what: str, offset: int | None) -> dict[str, Any]:
    """The view's attributes from parsed Struct values, each checked in the order the fields are declared."""
    return {
        f.attr: f.load(tuple(values.get(n) for n in f.names), what, offset)
        for f in fields
        if f.attr is not None and f.load is not None
    }


_STREAM_FIELDS = (
    _plain("width"),
    _plain("height"),
    _plain("frame_count"),
    _ratio("frame_rate", "frame_rate", positive=True),
    _ratio("time_base", "time_base", positive=True),
    _ratio("sample_aspect_ratio", "sar", positive=False),
    _derived("duration", _duration_units),
    _plain("pix_fmt"),
    _plain("color_range"),
    _plain("color_space"),
    _plain("color_primaries"),
    _plain("color_trc"),
)
_REPRESENTATION_FIELDS = (
    _id("network", NetworkKind),
    _plain("hidden"),
    _plain("layers"),
    _plain("w0", float),
    _id("encoding", EncodingKind),
    _split("enc_dims", ("lx", "ly", "lt")),
    _plain("sigma", float),
    _flag("prepend_coord"),
    _id("coords", CoordConvention),
    _plain("chunk_frames"),
)
_CODER_FIELDS = (
    _id("kind", CoderKind, label="coder"),
    _plain("qp_density"),
    _flag("dependent_quantization"),
    _plain("cabac_unary_length_minus1"),
    _plain("nncodec_version"),
)
_TILE_FIELDS = (_plain("tile_width"), _plain("tile_height"))  # a 3.x grid: its tiles do not overlap
_TILE_FIELDS_V4 = (*_TILE_FIELDS, _plain("overlap"))
_METADATA_FIELDS = (_plain("encoder"), _plain("settings"))
_EXTENSION_FIELDS = (_plain("tag", bytes), _plain("value", bytes))
_CODED_TENSOR_FIELDS = (_plain("qp"), _plain("data", bytes))
_CHUNK_FIELDS = (  # Packet.tensors and the prediction's chunk-0 rule are handled where the chunk is
    _plain("index"),
    _plain("first_frame"),
    _plain("frame_count"),
    _plain("train_psnr", float),
    _id("prediction", Prediction, default=Prediction.KEY),  # a 1.x chunk has no prediction byte: a key chunk
)
_INDEX_ENTRY_FIELDS = (
    _plain("first_frame"),
    _plain("frame_count"),
    _plain("offset"),
    _plain("size"),
    _plain("crc32"),
    _plain("train_psnr", float),
    _id("prediction", Prediction, default=Prediction.KEY),
)

_HEADER_PARTS = (
    ("stream", StreamInfo, _STREAM_FIELDS),
    ("representation", Representation, _REPRESENTATION_FIELDS),
    ("coder", CoderParams, _CODER_FIELDS),
    ("metadata", Metadata, _METADATA_FIELDS),
)
_HEADER_PARTS_V3 = (*_HEADER_PARTS[:2], ("tiles", TileGrid, _TILE_FIELDS), *_HEADER_PARTS[2:])
_HEADER_PARTS_V4 = (*_HEADER_PARTS[:2], ("tiles", TileGrid, _TILE_FIELDS_V4), *_HEADER_PARTS[2:])


def _header_layout(major: int) -> tuple[c.Construct, tuple[tuple[str, Any, tuple[_Field, ...]], ...]]:
    """The HeaderBody Struct of a file of version ``major`` and the views of its parts."""
    if major >= MAJOR_OVERLAP:
        return HEADER_BODY_V4, _HEADER_PARTS_V4
    return (HEADER_BODY_V3, _HEADER_PARTS_V3) if major >= MAJOR_TILES else (HEADER_BODY, _HEADER_PARTS)


# --- header ---------------------------------------------------------------------------------------------


def validate_header(header: Header, offset: int | None = None) -> None:
    """Refuse a header whose values the spec does not allow (MalformedError)."""
    s, r, k = header.stream, header.representation, header.coder
    lim = LIMITS
    _in_range("width", s.width, 1, lim["max_dimension"], offset)
    _in_range("height", s.height, 1, lim["max_dimension"], offset)
    _in_range("frame_count", s.frame_count, 0, 0xFFFFFFFF, offset)
    for name, q, num_lo in (
        ("frame_rate", s.frame_rate, 1),
        ("time_base", s.time_base, 1),
        ("sample_aspect_ratio", s.sample_aspect_ratio, 0),
    ):
        q = Fraction(q)
        _check(
            num_lo <= q.numerator <= 0xFFFFFFFF and 1 <= q.denominator <= 0xFFFFFFFF,
            f"header: {name} {q} not representable (numerator >= {num_lo}, 32-bit terms)",
            offset,
        )
    for name in ("color_range", "color_space", "color_primaries", "color_trc"):
        _in_range(name, getattr(s, name), 0, 255, offset)
    _check(s.pix_fmt.isascii() and len(s.pix_fmt) <= 255, "header: pix_fmt must be ASCII, <= 255", offset)
    _enum(NetworkKind, int(r.network), "header: network", offset or 0)
    _enum(EncodingKind, int(r.encoding), "header: encoding", offset or 0)
    _enum(CoordConvention, int(r.coords), "header: coords", offset or 0)
    _in_range("hidden", r.hidden, 1, lim["max_hidden"], offset)
    _in_range("layers", r.layers, 1, lim["max_layers"], offset)
    _check(len(r.enc_dims) == 3, "header: enc_dims must be (l_x, l_y, l_t)", offset)
    for name, v in zip(("lx", "ly", "lt"), r.enc_dims):
        _in_range(name, v, 0, lim["max_enc_dim"], offset)
    _in_range("chunk_frames", r.chunk_frames, 1, lim["max_chunk_frames"], offset)
    _check(math.isfinite(r.w0), f"header: w0 {r.w0} is not finite", offset)
    _check(math.isfinite(r.sigma) and r.sigma > 0, f"header: sigma {r.sigma} must be finite and > 0", offset)
    _check(r.in_features >= 1, "header: the network has no inputs", offset)
    _check(
        r.parameter_count <= lim["max_parameters"],
        f"header: {r.parameter_count} parameters per chunk exceed {lim['max_parameters']}",
        offset,
    )
    _enum(CoderKind, int(k.kind), "header: coder", offset or 0)
    _in_range("qp_density", k.qp_density, 0, 255, offset)
    _in_range("cabac_unary_length_minus1", k.cabac_unary_length_minus1, 0, 255, offset)
    _check(
        k.nncodec_version.isascii() and len(k.nncodec_version) <= 255,
        "header: nncodec_version must be ASCII, <= 255",
        offset,
    )
    for name in ("encoder", "settings"):
        _check(
            len(getattr(header.metadata, name).encode("utf-8")) <= 0xFFFF,
            f"header: metadata {name} longer than 65535 bytes",
            offset,
        )


def _header_body_obj(header: Header, extensions: tuple[Extension, ...],
                     parts: tuple[tuple[str, Any, tuple[_Field, ...]], ...]) -> dict[str, Any]:
    obj: dict[str, Any] = {part: _store(fields, getattr(header, part)) for part, _, fields in parts}
    obj["extensions"] = [_store(_EXTENSION_FIELDS, e) for e in extensions]
    return obj


def file_version(header: Header, audio: bool = False) -> tuple[int, int]:
    """The (major, minor) a writer of this version gives a file of ``header`` (spec "Version rules"): 4.0
    with a tile grid whose tiles overlap, 3.0 with one whose tiles do not (what a 3.0 writer writes), with or
    without audio either way; else 2.1 with audio and 2.0 without, as a 2.1 writer does."""
    if header.tiles is not None:
        return (MAJOR_OVERLAP, 0) if header.tiles.overlap else (MAJOR_TILES, 0)
    return MAJOR, MINOR_AUDIO if audio else 0


def build_header(header: Header, *, minor: int | None = None,
                 extensions: tuple[Extension, ...] = ()) -> bytes:
    """Preamble, header body and header CRC32 of ``header`` (spec "FileHeader"): a major 4 file when the
    header's tiles overlap, a major 3 one when they do not, else a major 2 one (:func:`file_version`).
    ``minor`` defaults to the newest of that major."""
    validate_header(header)
    for e in extensions:
        _check(len(e.tag) == 4, "header: an extension tag is 4 bytes", None)
    major = file_version(header)[0]
    if minor is None:
        minor = NEWEST_MINOR[major]
    struct, parts = _header_layout(major)
    body = _build(struct, _header_body_obj(header, extensions, parts), "header")
    _check(len(body) <= LIMITS["max_header_length"], "header: longer than max_header_length", None)
    return _build(FILE_HEADER, {"major": major, "minor": minor, "body": body}, "header")


def parse_preamble(data: bytes) -> Preamble:
    """The first 16 bytes of a file; refuses anything that is not INVR (MalformedError)."""
    if data[: len(MAGIC)] != MAGIC:
        raise MalformedError("not an INVR file (bad magic)", 0)
    p = _parse(PREAMBLE, data, "preamble", 0)
    return Preamble(major=p.major, minor=p.minor, header_length=p.header_length)


def verify_header(preamble_and_body_and_crc: bytes) -> bytes:
    """Check the header CRC32 over preamble and body; return the body (ChecksumError on mismatch)."""
    h = _parse(FILE_HEADER, preamble_and_body_and_crc, "header", 0)
    return bytes(h.body)


def parse_header_body(body: bytes, offset: int = PREAMBLE_SIZE,
                      major: int = MAJOR) -> tuple[Header, tuple[Extension, ...]]:
    """The Header view of a CRC-checked header body of a file of version ``major``, and the extension records
    it carries. Only a major 3 or 4 header has a tile grid, and only a major 4 one its overlap (0 in a 3.x
    file); the grid's values are judged by the field rules."""
    struct, layout = _header_layout(major)
    h = _parse(struct, body, "header", offset)
    parts = {part: view(**_load(fields, h[part], "header", offset)) for part, view, fields in layout}
    header = Header(**parts)
    validate_header(header, offset)
    extensions = tuple(Extension(**_load(_EXTENSION_FIELDS, e, "header", offset)) for e in h.extensions)
    return header, extensions


# --- records --------------------------------------------------------------------------------------------


def build_record(tag: bytes, body: bytes) -> bytes:
    """Tag, length, body and CRC32 (spec "Record")."""
    _check(len(body) <= LIMITS["max_record_length"], f"{tag!r} record longer than max_record_length", None)
    return _build(RECORD, {"tag": tag, "body": body}, "record")


def parse_record_head(data: bytes, offset: int, what: str = "record") -> tuple[bytes, int]:
    """Tag and body length of the 8 bytes that start a record (the length is not yet limited)."""
    h = _parse(RECORD_HEAD, data, what, offset)
    return bytes(h.tag), int(h.length)


def check_record_length(length: int, what: str, offset: int) -> None:
    """Refuse a record body longer than the spec's limit, before anything is read or allocated for it."""
    limit = LIMITS["max_record_length"]
    if length > limit:
        raise MalformedError(f"{what}: length {length} at byte {offset} exceeds {limit}", offset)


def parse_record(data: bytes, what: str, offset: int) -> Record:
    """A whole record; its CRC32 is verified before anything looks at the body."""
    r = _parse(RECORD, data, what, offset)
    return Record(tag=bytes(r.tag), body=bytes(r.body), crc32=r.crc32)


def _tensor_bytes(coder: CoderKind) -> int | None:
    return {CoderKind.RAW_FLOAT32: 4, CoderKind.RAW_FLOAT16: 2}.get(coder)


def tile_count(header: Header) -> int:
    """Tiles of a frame of ``header``: 1 without a tile grid (spec "Tiles")."""
    if header.tiles is None:
        return 1
    return header.tiles.count(header.stream.width, header.stream.height)


def tensor_count(header: Header) -> int:
    """Coded tensors of every chunk of ``header``: the representation's, once per tile (spec "ChunkBody").
    What :func:`chunk_overhead` takes."""
    return tile_count(header) * len(header.representation.tensor_shapes())


def tensor_label(header: Header, i: int) -> str:
    """How messages name coded tensor ``i`` of a chunk: ``tensor layers.0.weight``, after ``tile k: `` in a
    file with a tile grid."""
    names = header.representation.tensor_names()
    name = f"tensor {names[i % len(names)]}"
    return name if header.tiles is None else f"tile {i // len(names)}: {name}"


def tile_tensors(packet: Packet, header: Header) -> tuple[tuple[CodedTensor, ...], ...]:
    """A chunk's coded tensors tile by tile, in the tiles' coded order (``header.tile_list()``), each tile's
    in "Tensor order": ``Packet.tensors`` is their concatenation. Call :func:`check_packet` first."""
    n = len(header.representation.tensor_shapes())
    return tuple(packet.tensors[k : k + n] for k in range(0, len(packet.tensors), n))


def check_packet(packet: Packet, header: Header, what: str, offset: int | None = None) -> None:
    """Refuse a packet that cannot belong to a stream with ``header`` (tensor count, raw sizes, frames). The
    header's tile grid has passed the field rules (:func:`invrcodec.format.rules.check_header`)."""
    shapes = header.representation.tensor_shapes()
    _check(
        1 <= packet.frame_count <= header.representation.chunk_frames,
        f"{what}: frame_count {packet.frame_count} not in 1..{header.representation.chunk_frames}",
        offset,
    )
    tiles = tile_count(header)
    if header.tiles is None:
        expected = f"the representation has {len(shapes)}"
    else:
        expected = f"{tiles} tiles of {len(shapes)} need {tiles * len(shapes)}"
    _check(len(packet.tensors) == tiles * len(shapes), f"{what}: {len(packet.tensors)} tensors, {expected}",
           offset)
    per = _tensor_bytes(header.coder.kind)
    sizes = [per * math.prod(shape) for _, shape in shapes] if per is not None else []
    for i, t in enumerate(packet.tensors):
        if not -(1 << 31) <= t.qp < (1 << 31):
            raise MalformedError(f"{what}: {tensor_label(header, i)}: qp {t.qp} not a 32-bit int", offset)
        if per is not None and len(t.data) != sizes[i % len(shapes)]:
            raise MalformedError(
                f"{what}: {tensor_label(header, i)}: {len(t.data)} bytes, expected {sizes[i % len(shapes)]}",
                offset,
            )


def _prediction(value: int, index: int, what: str, offset: int | None) -> Prediction:
    """A chunk's prediction id, refused where the spec forbids it (chunk 0 has no chunk before it)."""
    pred = _enum(Prediction, value, f"{what}: prediction", offset or 0)
    _check(not (index == 0 and pred != Prediction.KEY), f"{what}: chunk 0 must be a key chunk", offset)
    return pred


def build_chunk_body(packet: Packet) -> bytes:
    """Body of a CHNK record (spec "ChunkBody")."""
    _prediction(int(packet.prediction), packet.index, f"chunk {packet.index}", None)
    obj = _store(_CHUNK_FIELDS, packet)
    obj["tensors"] = [_store(_CODED_TENSOR_FIELDS, t) for t in packet.tensors]
    obj["extensions"] = []
    return _build(CHUNK_BODY, obj, f"chunk {packet.index}")


def parse_chunk_body(body: bytes, what: str, offset: int, major: int = MAJOR) -> Packet:
    """Packet view of a CRC-checked CHNK body of a file of version ``major`` (extensions are skipped)."""
    b = _parse(CHUNK_BODY if major >= 2 else CHUNK_BODY_V1, body, what, offset)
    fields = _load(_CHUNK_FIELDS, b, what, offset)
    _prediction(int(fields["prediction"]), fields["index"], what, offset)
    tensors = tuple(CodedTensor(**_load(_CODED_TENSOR_FIELDS, t, what, offset)) for t in b.tensors)
    return Packet(tensors=tensors, **fields)


def build_index_body(entries: list[IndexEntry] | tuple[IndexEntry, ...]) -> bytes:
    """Body of the INDX record (spec "IndexBody")."""
    return _build(INDEX_BODY, {"entries": [_store(_INDEX_ENTRY_FIELDS, e) for e in entries]}, "index")


def parse_index_body(body: bytes, offset: int, major: int = MAJOR) -> list[IndexEntry]:
    """IndexEntry views of a CRC-checked INDX body of a file of version ``major``."""
    struct, entry = (INDEX_BODY, INDEX_ENTRY) if major >= 2 else (INDEX_BODY_V1, INDEX_ENTRY_V1)
    if len(body) < 4 or len(body) != 4 + entry.sizeof() * int.from_bytes(body[:4], "little"):
        raise MalformedError(f"index: entry count does not match its length at byte {offset}", offset)
    entries = []
    for i, e in enumerate(_parse(struct, body, "index", offset).entries):
        fields = _load(_INDEX_ENTRY_FIELDS, e, f"index entry {i}", offset)
        _prediction(int(fields["prediction"]), i, f"index entry {i}", offset)
        entries.append(IndexEntry(**fields))
    return entries


def build_trailer_body(index_offset: int) -> bytes:
    """Body of the TAIL record (spec "TrailerBody")."""
    return _build(TRAILER_BODY, {"index_offset": index_offset}, "trailer")


def parse_trailer_body(body: bytes, offset: int) -> int:
    """The index offset a CRC-checked TAIL body points to."""
    _check(len(body) == TRAILER_BODY_SIZE, f"trailer: body is {len(body)} bytes, not 8", offset)
    return int(_parse(TRAILER_BODY, body, "trailer", offset).index_offset)


def patch_frame_count(header_bytes: bytes, header: Header, frame_count: int) -> bytes:
    """``header_bytes`` rebuilt with the true frame count (and duration); the length never changes."""
    stream = dataclasses.replace(header.stream, frame_count=frame_count)
    pre = parse_preamble(header_bytes[:PREAMBLE_SIZE])
    body_end = PREAMBLE_SIZE + pre.header_length
    _, extensions = parse_header_body(header_bytes[PREAMBLE_SIZE:body_end], major=pre.major)
    new = build_header(dataclasses.replace(header, stream=stream), minor=pre.minor, extensions=extensions)
    if len(new) != len(header_bytes):
        raise MalformedError("header: patching frame_count changed its length")
    return new


# --- audio (2.1) ----------------------------------------------------------------------------------------

_AUDIO_STREAM_FIELDS = (
    _plain("codec"),
    _plain("sample_rate"),
    _plain("channels"),
    _plain("channel_layout"),
    _ratio("time_base", "time_base", positive=True),
    _plain("frame_size"),
    _plain("bit_rate"),
    _plain("extradata", bytes),
)
_AUDIO_INDEX_FIELDS = (
    _plain("offset"),
    _plain("size"),
    _plain("crc32"),
    _plain("stream"),
    _plain("packet_count"),
    _plain("first_dts"),
    _plain("last_dts"),
    _plain("start"),
    _plain("end"),
)


def build_audio_stream(info: AudioStreamInfo) -> bytes:
    """The value of an AUDS header extension (spec "AudioStream")."""
    what = f"audio stream {info.codec!r}"
    _check(info.codec.isascii() and info.channel_layout.isascii(), f"{what}: names must be ASCII", None)
    obj = _store(_AUDIO_STREAM_FIELDS, info)
    obj["extensions"] = []
    return _build(AUDIO_STREAM, obj, what)


def parse_audio_stream(value: bytes, what: str, offset: int | None) -> AudioStreamInfo:
    """The AudioStreamInfo of an AUDS extension's value (its other extensions are skipped)."""
    a = _parse(AUDIO_STREAM, value, what, offset or 0)
    return AudioStreamInfo(**_load(_AUDIO_STREAM_FIELDS, a, what, offset))


def audio_streams(extensions: tuple[Extension, ...],
                  offset: int | None = PREAMBLE_SIZE) -> tuple[AudioStreamInfo, ...]:
    """The audio streams a header declares: its AUDS extensions, in order (stream 0 is the first)."""
    found = [e for e in extensions if e.tag == EXT_AUDIO_STREAM]
    _check(len(found) <= 255, f"header: {len(found)} audio streams (at most 255)", offset)
    return tuple(parse_audio_stream(e.value, f"header: audio stream {i}", offset)
                 for i, e in enumerate(found))


def _audio_flags(p: AudioPacket) -> int:
    return (AUDIO_FLAG_KEY if p.keyframe else 0) | (AUDIO_FLAG_DISCARD if p.discard else 0)


def build_audio_body(stream: int, packets: list[AudioPacket] | tuple[AudioPacket, ...]) -> bytes:
    """Body of an AUDP record (spec "AudioPacketsBody"): packets of one stream, in dts order."""
    what = f"audio stream {stream}"
    _check(0 <= stream <= 255 and bool(packets), f"{what}: an audio record holds 1 or more packets", None)
    _check(all(p.stream == stream for p in packets), f"{what}: packets of another stream in its record", None)
    obj = {
        "stream": stream,
        "packets": [
            {"pts": p.pts, "dts": p.dts, "duration": p.duration, "flags": _audio_flags(p),
             "data": bytes(p.data)}
            for p in packets
        ],
        "extensions": [],
    }
    return _build(AUDIO_PACKETS_BODY, obj, what)


def parse_audio_body(body: bytes, what: str, offset: int) -> tuple[AudioPacket, ...]:
    """The packets of a CRC-checked AUDP body (its extensions are skipped)."""
    if len(body) >= AUDIO_BODY_FIXED_SIZE:
        count = int.from_bytes(body[1:5], "little")
        _check(
            count * AUDIO_PACKET_FIXED_SIZE <= len(body) - AUDIO_BODY_FIXED_SIZE,
            f"{what}: {count} packets cannot fit in {len(body)} bytes",
            offset,
        )
    b = _parse(AUDIO_PACKETS_BODY, body, what, offset)
    packets = []
    for i, p in enumerate(b.packets):
        _check(p.flags & ~(AUDIO_FLAG_KEY | AUDIO_FLAG_DISCARD) == 0,
               f"{what}: packet {i}: unknown flags 0x{p.flags:02x}", offset)
        packets.append(AudioPacket(stream=b.stream, pts=p.pts, dts=p.dts, duration=p.duration,
                                   data=bytes(p.data), keyframe=bool(p.flags & AUDIO_FLAG_KEY),
                                   discard=bool(p.flags & AUDIO_FLAG_DISCARD)))
    _check(bool(packets), f"{what}: an audio record holds no packet", offset)
    return tuple(packets)


def build_audio_index_body(entries: list[AudioIndexEntry] | tuple[AudioIndexEntry, ...]) -> bytes:
    """Body of the AIDX record (spec "AudioIndexBody")."""
    obj = {"entries": [_store(_AUDIO_INDEX_FIELDS, e) for e in entries]}
    return _build(AUDIO_INDEX_BODY, obj, "audio index")


def parse_audio_index_body(body: bytes, offset: int) -> list[AudioIndexEntry]:
    """AudioIndexEntry views of a CRC-checked AIDX body."""
    size = AUDIO_INDEX_ENTRY.sizeof()
    if len(body) < 4 or len(body) != 4 + size * int.from_bytes(body[:4], "little"):
        raise MalformedError(f"audio index: entry count does not match its length at byte {offset}", offset)
    parsed = _parse(AUDIO_INDEX_BODY, body, "audio index", offset)
    return [AudioIndexEntry(**_load(_AUDIO_INDEX_FIELDS, e, f"audio index entry {i}", offset))
            for i, e in enumerate(parsed.entries)]

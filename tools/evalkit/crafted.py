"""Crafted .invr files (tools/fuzz.py): a committed sample parsed with the format's own construct Structs,
one to three things changed (a field set to an extreme or random value; tensors or chunks dropped, repeated,
swapped or filled with random bytes; extension records added), and the file written back with every CRC and
the index recomputed, so that a reader must judge the values. A case is numbered: its seed fixes its bytes.
A version 3 file (tiles) or 4 file (overlapping tiles) is parsed with its own header Struct, so its tile grid
is one more field to change; :func:`tiled` makes one of a sample."""

from __future__ import annotations

import dataclasses
import math
import random
import struct
from pathlib import Path
from typing import Any

import construct as c

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.invr"))

# --- the file as construct Containers ------------------------------------------------------------------


def _struct(name: str, major: int) -> c.Construct:
    """The Struct ``name`` of a file of version ``major``: ``ChunkBodyV1`` of a 1.x file, ``HeaderBodyV3`` of
    a 3.x file, ``HeaderBodyV4`` of a 4.x file, else the one of that name."""
    from invrcodec.format import structs as fmt

    suffix = "V1" if major < 2 else "V4" if major >= 4 else "V3" if major >= 3 else ""
    return fmt.STRUCTS.get(f"{name}{suffix}", fmt.STRUCTS[name])


def _entry_struct(major: int) -> c.Construct:
    entries = next(sc for sc in _struct("IndexBody", major).subcons if sc.name == "entries")
    return entries.subcon.subcon  # Renamed -> Array -> IndexEntry


@dataclasses.dataclass
class Model:
    """A parsed .invr file: preamble numbers, header body, chunk bodies, index entries, trailer; with audio
    (2.1), the AUDS values parsed (under each extension's ``audio`` key), the AUDP bodies with where they sit,
    and whether there is an audio index."""

    major: int
    minor: int
    header: Any
    chunks: list[Any]
    entries: list[Any]
    index_offset: int | None = None  # None: recompute
    index_patches: list[tuple[int, str, Any]] = dataclasses.field(default_factory=list)  # after the rebuild
    tail: bytes = b""  # appended after the trailer
    # (k: before chunk k, None: after the audio index; the AUDP body)
    audio: list[tuple[int | None, Any]] = dataclasses.field(default_factory=list)
    audio_index: bool = False  # write an AIDX record after the last chunk
    audio_entries: list[Any] = dataclasses.field(default_factory=list)  # as loaded (mutation targets)
    audio_index_patches: list[tuple[int, str, Any]] = dataclasses.field(default_factory=list)
    layout: int | None = None  # the major whose HeaderBody ``header`` is (None: ``major``): a changed
    # version number leaves the header's bytes as they were


def load(data: bytes) -> Model:
    from invrcodec.format import structs as fmt

    pre = fmt.PREAMBLE.parse(data[:16])
    body_end = 16 + pre.header_length
    header = _struct("HeaderBody", pre.major).parse(data[16:body_end])
    for ext in header.extensions:
        if ext.tag == fmt.EXT_AUDIO_STREAM:
            ext["audio"] = fmt.AUDIO_STREAM.parse(ext.value)
    m = Model(pre.major, pre.minor, header, [], [], layout=pre.major)
    pos = body_end + 4
    while data[pos : pos + 4] != fmt.TAG_INDEX:
        tag, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + length]
        if tag == fmt.TAG_CHUNK:
            m.chunks.append(_struct("ChunkBody", pre.major).parse(body))
        elif tag == fmt.TAG_AUDIO:
            m.audio.append((None if m.audio_index else len(m.chunks), fmt.AUDIO_PACKETS_BODY.parse(body)))
        elif tag == fmt.TAG_AUDIO_INDEX:
            m.audio_index = True
            m.audio_entries = list(fmt.AUDIO_INDEX_BODY.parse(body).entries)
        else:
            raise ValueError(f"a sample with a record fuzz.py does not know: {tag!r}")
        pos += 12 + length
    length = int.from_bytes(data[pos + 4 : pos + 8], "little")
    m.entries = list(_struct("IndexBody", pre.major).parse(data[pos + 8 : pos + 8 + length]).entries)
    return m


def _audio_entry(offset: int, rec: bytes, body: Any) -> dict[str, Any]:
    """The audio index entry of AUDP record ``rec`` as written (zeros where its packets say nothing)."""
    packets = body.packets
    return {
        "offset": offset, "size": len(rec), "crc32": int.from_bytes(rec[-4:], "little"),
        "stream": body.stream, "packet_count": len(packets),
        "first_dts": packets[0].dts if packets else 0, "last_dts": packets[-1].dts if packets else 0,
        "start": min((p.pts for p in packets), default=0),
        "end": max((p.pts + p.duration for p in packets), default=0),
    }


def dump(m: Model) -> bytes:
    """The file of ``m``, its index and audio index rebuilt from the records as written and every CRC
    recomputed."""
    from invrcodec.format import structs as fmt

    for ext in m.header.extensions:
        if "audio" in ext:
            ext.value = fmt.AUDIO_STREAM.build(ext.audio)
    body = _struct("HeaderBody", m.major if m.layout is None else m.layout).build(m.header)
    out = bytearray(fmt.FILE_HEADER.build({"major": m.major, "minor": m.minor, "body": body}))
    records = []
    audio_entries: list[dict[str, Any]] = []

    def audio_records(slot: int | None) -> list[tuple[bytes, Any]]:
        """The AUDP records that sit before chunk ``slot`` (those meant for a chunk that is gone: before the
        audio index), or after the audio index (None)."""
        last = len(m.chunks)
        return [
            (fmt.RECORD.build({"tag": fmt.TAG_AUDIO, "body": fmt.AUDIO_PACKETS_BODY.build(body)}), body)
            for where, body in m.audio
            if where == slot or (slot == last and where is not None and where > last)
        ]

    def write_audio(slot: int) -> None:
        for rec, body in audio_records(slot):
            audio_entries.append(_audio_entry(len(out), rec, body))
            out.extend(rec)

    for k, ch in enumerate(m.chunks):
        write_audio(k)
        rec = fmt.RECORD.build({"tag": fmt.TAG_CHUNK, "body": _struct("ChunkBody", m.major).build(ch)})
        records.append((len(out), rec))
        out += rec
    write_audio(len(m.chunks))
    if m.audio_index:
        tail = audio_records(None)
        at = len(out) + 12 + 4 + fmt.AUDIO_INDEX_ENTRY.sizeof() * (len(audio_entries) + len(tail))
        for rec, body in tail:
            audio_entries.append(_audio_entry(at, rec, body))
            at += len(rec)
        for i, key, value in m.audio_index_patches:
            if i < len(audio_entries):
                audio_entries[i][key] = value
        out += fmt.RECORD.build({"tag": fmt.TAG_AUDIO_INDEX,
                                 "body": fmt.AUDIO_INDEX_BODY.build({"entries": audio_entries})})
        for rec, _ in tail:
            out += rec
    entries = []  # rebuilt from the chunks as written, then the index mutations applied
    for ch, (offset, rec) in zip(m.chunks, records):
        e = {k: ch[k] for k in ("first_frame", "frame_count", "train_psnr", "prediction") if k in ch}
        e.update(offset=offset, size=len(rec), crc32=int.from_bytes(rec[-4:], "little"))
        entries.append(e)
    for i, key, value in m.index_patches:
        if i < len(entries):
            entries[i][key] = value
    index_offset = len(out)
    idx_struct = _struct("IndexBody", m.major)
    entry_fields = [sc.name for sc in _entry_struct(m.major).subcons if sc.name]
    clean = [{k: e.get(k, 0) for k in entry_fields} for e in entries]
    out += fmt.RECORD.build({"tag": fmt.TAG_INDEX, "body": idx_struct.build({"entries": clean})})
    at = index_offset if m.index_offset is None else m.index_offset
    out += fmt.RECORD.build({"tag": fmt.TAG_TRAILER, "body": fmt.TRAILER_BODY.build({"index_offset": at})})
    return bytes(out) + m.tail


def tiled(data: bytes, tile_width: int, tile_height: int, overlap: int | None = None) -> Model:
    """The 1.x or 2.x file ``data`` as a 3.0 file cut into ``tile_width x tile_height`` tiles (spec "Tiles"), every
    tile of a chunk holding that chunk's network (the same tensors, once per tile): a lawful tiled file when
    the grid is, whose tiles decode to the sample's networks at the sizes of their areas. With an ``overlap``
    (0 included), a 4.0 file whose tiles overlap by that many pixels."""
    from invrcodec.types import TileGrid

    m = load(data)
    s = m.header.stream
    count = TileGrid(tile_width, tile_height).count(s.width, s.height)
    major = 3 if overlap is None else 4
    m.major, m.minor, m.layout = major, 0, major
    m.header["tiles"] = c.Container(tile_width=tile_width, tile_height=tile_height)
    if overlap is not None:
        m.header.tiles["overlap"] = overlap
    for ch in m.chunks:
        ch.tensors = [c.Container(t) for _ in range(count) for t in ch.tensors]
        ch.setdefault("prediction", 0)  # a 1.x chunk is a key chunk
    for e in m.entries:
        e.setdefault("prediction", 0)
    return m


# --- mutations ------------------------------------------------------------------------------------------

_INT_RANGES = {"<B": (0, 255), "<H": (0, 65535), "<L": (0, 2**32 - 1), "<Q": (0, 2**64 - 1),
               "<l": (-(2**31), 2**31 - 1), "<q": (-(2**63), 2**63 - 1)}
_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 30.0, 1e-300, 5e-324, 1e300, 1e308, -1e308, math.inf, -math.inf,
           math.nan, 2.0**16, 2.0**16 + 1, 2.0**-16, 2.0**-17, 1.4, 0.003, 1e6]


def _leaves(sc: c.Construct, value: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    """(path, kind) of every field a mutation can set; computed fields (lengths, counts, CRCs) are skipped."""
    while isinstance(sc, c.Renamed):
        sc = sc.subcon
    if isinstance(sc, c.Struct):
        out = []
        for sub in sc.subcons:
            if sub.name and not isinstance(getattr(sub, "subcon", None), (c.Rebuild, c.Const, c.Checksum)):
                out += _leaves(sub, value[sub.name], (*path, sub.name))
        return out
    if isinstance(sc, (c.Array, c.GreedyRange)):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(sc.subcon, v, (*path, i))]
    if isinstance(sc, c.FormatField):
        return [(path, sc.fmtstr)]
    if isinstance(sc, c.Bytes):
        return [(path, "tag" if isinstance(sc.length, int) else "bytes")]
    if isinstance(sc, c.StringEncoded):
        return [(path, "str")]
    return []


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        root = root[p]
    return root


def _set(root: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(root, path[:-1])[path[-1]] = value


def _int_value(rng: random.Random, fmtstr: str, old: int) -> int:
    lo, hi = _INT_RANGES[fmtstr]
    picks = [lo, hi, lo + 1, hi - 1, 0, 1, 2, 3, old + 1, old - 1, old * 2, old // 2, 2**15, 2**16 - 1, 2**16,
             2**31 - 1, 2**31, -1, -(2**31), 2**62, 2**62 + 1, -(2**62) - 1, -old, rng.randint(lo, hi),
             rng.randint(0, 64)]
    return min(hi, max(lo, rng.choice(picks)))


def _float_value(rng: random.Random, old: float) -> float:
    if rng.random() < 0.7:
        return rng.choice(_FLOATS)
    bits = struct.unpack("<Q", struct.pack("<d", old))[0] ^ (1 << rng.randrange(64))
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _bytes_value(rng: random.Random, old: bytes, others: list[bytes]) -> bytes:
    n = len(old)
    choice = rng.randrange(9)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(n))
    if choice == 1:
        return old[: rng.randrange(n + 1)]
    if choice == 2:
        return old + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if choice == 3:
        b = bytearray(old)
        for _ in range(rng.randint(1, 4)):
            if b:
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if choice == 4:
        return b""
    if choice == 5:
        return rng.choice(others) if others else old
    if choice == 6:
        return bytes(n)
    if choice == 7:
        return b"\xff" * n
    return old + old


def _str_value(rng: random.Random) -> str:
    return rng.choice(["", "x" * 255, "yuv444p", "gray", "rgb24", "2.1.3", "9.9.9", "\x00\x01",
                       "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(40)))])


def _mutate_field(rng: random.Random, m: Model) -> str:
    from invrcodec.format import structs as fmt

    header = _struct("HeaderBody", m.major if m.layout is None else m.layout)  # a tiled file's: its grid too
    targets: list[tuple[str, Any, c.Construct]] = [("header", m.header, header)]
    targets += [(f"chunk{i}", ch, _struct("ChunkBody", m.major)) for i, ch in enumerate(m.chunks)]
    entry = _entry_struct(m.major)
    targets += [(f"index{i}", e, entry) for i, e in enumerate(m.entries)]
    weights = [6] + [3] * len(m.chunks) + [1] * len(m.entries)
    streams = [ext.audio for ext in m.header.extensions if "audio" in ext]
    targets += [(f"audiostream{i}", a, fmt.AUDIO_STREAM) for i, a in enumerate(streams)]
    targets += [(f"audio{i}", body, fmt.AUDIO_PACKETS_BODY) for i, (_, body) in enumerate(m.audio)]
    targets += [(f"aindex{i}", e, fmt.AUDIO_INDEX_ENTRY) for i, e in enumerate(m.audio_entries)]
    weights += [3] * len(streams) + [3] * len(m.audio) + [1] * len(m.audio_entries)
    name, root, sc = rng.choices(targets, weights)[0]
    leaves = _leaves(sc, root, ())
    if not leaves:
        return "nothing"
    path, kind = rng.choice(leaves)
    old = _get(root, path)
    if kind in _INT_RANGES:
        new: Any = _int_value(rng, kind, int(old))
    elif kind == "<d":
        new = _float_value(rng, float(old))
    elif kind == "bytes":
        others = [bytes(t.data) for ch in m.chunks for t in ch.tensors]
        others += [bytes(p.data) for _, body in m.audio for p in body.packets]
        new = _bytes_value(rng, bytes(old), others)
    elif kind == "tag":
        tags = [b"CHNK", b"INDX", b"TAIL", b"AUDS", b"AUDP", b"AIDX", b"\0\0\0\0", rng.randbytes(4)]
        new = rng.choice(tags)
    else:
        new = _str_value(rng)
    if name.startswith("index"):
        m.index_patches.append((int(name[5:]), path[0], new))
    elif name.startswith("aindex"):
        m.audio_index_patches.append((int(name[6:]), path[0], new))
    else:
        _set(root, path, new)
        if name == "header" and path[0] == "extensions" and path[-1] == "value":
            _get(root, path[:-1]).pop("audio", None)  # the raw value, not the parsed stream, is written
    return f"{name}.{'.'.join(map(str, path))}={new!r}"[:160]


def _mutate_audio(rng: random.Random, m: Model) -> str:
    """One change to the audio records of a file with audio: records or packets dropped, repeated, swapped,
    reversed or moved, or the audio index dropped."""
    choice = rng.randrange(8)
    if choice == 0:
        del m.audio[rng.randrange(len(m.audio))]
        return "drop an audio record"
    if choice == 1:
        m.audio.insert(rng.randrange(len(m.audio) + 1), rng.choice(m.audio))
        return "repeat an audio record"
    if choice == 2 and len(m.audio) > 1:
        m.audio.reverse()
        return "reverse the audio records"
    if choice == 3:
        i = rng.randrange(len(m.audio))
        where = rng.choice([None, *range(len(m.chunks) + 1)])
        m.audio[i] = (where, m.audio[i][1])
        return f"move audio record {i} to {where}"
    body = rng.choice(m.audio)[1]
    if choice == 4 and body.packets:
        del body.packets[rng.randrange(len(body.packets))]
        return "drop an audio packet"
    if choice == 5 and body.packets:
        body.packets.insert(rng.randrange(len(body.packets) + 1), rng.choice(body.packets))
        return "repeat an audio packet"
    if choice == 6:
        body.packets.reverse()
        return "reverse an audio record's packets"
    m.audio_index = False
    return "drop the audio index"


def _mutate_structure(rng: random.Random, m: Model) -> str:
    if m.audio and rng.random() < 0.3:
        return _mutate_audio(rng, m)
    choice = rng.randrange(9)
    if choice == 0 and m.chunks:
        ch = rng.choice(m.chunks)
        if ch.tensors:
            del ch.tensors[rng.randrange(len(ch.tensors))]
        return "drop a tensor"
    if choice == 1 and m.chunks:
        ch = rng.choice(m.chunks)
        extra = rng.choice(ch.tensors or [{"qp": 0, "data": b""}])
        ch.tensors.insert(rng.randrange(len(ch.tensors) + 1), extra)
        return "repeat a tensor"
    if choice == 2 and m.chunks:
        ch = rng.choice(m.chunks)
        if len(ch.tensors) > 1:
            i, j = rng.sample(range(len(ch.tensors)), 2)
            ch.tensors[i], ch.tensors[j] = ch.tensors[j], ch.tensors[i]
        return "swap tensors"
    if choice == 3 and m.chunks:
        del m.chunks[rng.randrange(len(m.chunks))]
        return "drop a chunk"
    if choice == 4 and m.chunks:
        m.chunks.insert(rng.randrange(len(m.chunks) + 1), rng.choice(m.chunks))
        return "repeat a chunk"
    if choice == 5 and len(m.chunks) > 1:
        m.chunks.reverse()
        return "reverse the chunks"
    if choice == 6:
        where = m.header if rng.random() < 0.5 or not m.chunks else rng.choice(m.chunks)
        tag = rng.choice([b"XTRA", b"CHNK", bytes(rng.randrange(256) for _ in range(4))])
        where.extensions.append({"tag": tag, "value": rng.randbytes(rng.randrange(40))})
        return f"add extension {tag!r}"
    if choice == 7:
        m.index_offset = rng.choice([0, 16, 2**63, rng.randrange(4096)])
        return f"trailer index_offset={m.index_offset}"
    if choice == 8:
        m.tail = rng.choice([b"\0", b"TAIL", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))])
        return "bytes after the trailer"
    m.major, m.minor = rng.choice([(m.major, 65535), (0, 0), (3, 0), (1, 1), (2, 0), (1, 0), (4, 0), (5, 0)])
    return f"version {m.major}.{m.minor}"


def make_case(seed: int) -> tuple[bytes, str, bool]:
    """The bytes of case ``seed``, what was changed, and whether it is read through a pipe."""
    rng = random.Random(seed)
    base = SAMPLES[seed % len(SAMPLES)]
    did = [base.name]
    if rng.random() < 0.25:  # a 3.0 or 4.0 file: the sample cut into tiles, its grid more fields to change
        grid = rng.choice([(8, 8), (16, 8), (5, 16), (3, 7)])
        overlap = rng.choice([None, None, 0, 1, 2, 3])
        m = tiled(base.read_bytes(), *grid, overlap)
        did.append(f"tiled {grid[0]}x{grid[1]}" + ("" if overlap is None else f" overlap {overlap}"))
    else:
        m = load(base.read_bytes())
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        did.append(_mutate_field(rng, m) if rng.random() < 0.8 else _mutate_structure(rng, m))
    try:
        data = dump(m)
    except Exception as e:  # a value the Structs cannot write (non-ASCII text): the sample, one bit flipped
        data = bytearray(base.read_bytes())
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        data = bytes(data)
        did.append(f"unbuildable ({type(e).__name__}), one bit flipped instead")
    return data, "; ".join(did), rng.random() < 0.3

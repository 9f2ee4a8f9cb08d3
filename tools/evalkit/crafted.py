"""Crafted .invr files (tools/fuzz.py): a committed sample parsed with the format's own construct Structs,
one to three things changed (a field set to an extreme or random value; tensors or chunks dropped, repeated,
swapped or filled with random bytes; extension records added), and the file written back with every CRC and
the index recomputed, so that a reader must judge the values. A case is numbered: its seed fixes its bytes."""

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
    from invrcodec.format import structs as fmt

    v1 = fmt.STRUCTS.get(f"{name}V1")
    return v1 if (major < 2 and v1 is not None) else fmt.STRUCTS[name]


def _entry_struct(major: int) -> c.Construct:
    entries = next(sc for sc in _struct("IndexBody", major).subcons if sc.name == "entries")
    return entries.subcon.subcon  # Renamed -> Array -> IndexEntry


@dataclasses.dataclass
class Model:
    """A parsed .invr file: preamble numbers, header body, chunk bodies, index entries, trailer."""

    major: int
    minor: int
    header: Any
    chunks: list[Any]
    entries: list[Any]
    index_offset: int | None = None  # None: recompute
    index_patches: list[tuple[int, str, Any]] = dataclasses.field(default_factory=list)  # after the rebuild
    tail: bytes = b""  # appended after the trailer


def load(data: bytes) -> Model:
    from invrcodec.format import structs as fmt

    pre = fmt.PREAMBLE.parse(data[:16])
    body_end = 16 + pre.header_length
    header = fmt.HEADER_BODY.parse(data[16:body_end])
    chunks, pos = [], body_end + 4
    while data[pos : pos + 4] == fmt.TAG_CHUNK:
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        chunks.append(_struct("ChunkBody", pre.major).parse(data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    length = int.from_bytes(data[pos + 4 : pos + 8], "little")
    index = _struct("IndexBody", pre.major).parse(data[pos + 8 : pos + 8 + length])
    return Model(pre.major, pre.minor, header, chunks, list(index.entries))


def dump(m: Model) -> bytes:
    """The file of ``m``, its index rebuilt from the chunks as written and every CRC recomputed."""
    from invrcodec.format import structs as fmt

    body = fmt.HEADER_BODY.build(m.header)
    out = bytearray(fmt.FILE_HEADER.build({"major": m.major, "minor": m.minor, "body": body}))
    records = []
    for ch in m.chunks:
        rec = fmt.RECORD.build({"tag": fmt.TAG_CHUNK, "body": _struct("ChunkBody", m.major).build(ch)})
        records.append((len(out), rec))
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


# --- mutations ------------------------------------------------------------------------------------------

_INT_RANGES = {"<B": (0, 255), "<H": (0, 65535), "<L": (0, 2**32 - 1), "<Q": (0, 2**64 - 1),
               "<l": (-(2**31), 2**31 - 1)}
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
             2**31 - 1, 2**31, -1, -(2**31), rng.randint(lo, hi), rng.randint(0, 64)]
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

    targets: list[tuple[str, Any, c.Construct]] = [("header", m.header, fmt.HEADER_BODY)]
    targets += [(f"chunk{i}", ch, _struct("ChunkBody", m.major)) for i, ch in enumerate(m.chunks)]
    entry = _entry_struct(m.major)
    targets += [(f"index{i}", e, entry) for i, e in enumerate(m.entries)]
    weights = [6] + [3] * len(m.chunks) + [1] * len(m.entries)
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
        new = _bytes_value(rng, bytes(old), others)
    elif kind == "tag":
        new = rng.choice([b"CHNK", b"INDX", b"TAIL", b"\0\0\0\0", rng.randbytes(4)])
    else:
        new = _str_value(rng)
    if name.startswith("index"):
        m.index_patches.append((int(name[5:]), path[0], new))
    else:
        _set(root, path, new)
    return f"{name}.{'.'.join(map(str, path))}={new!r}"[:160]


def _mutate_structure(rng: random.Random, m: Model) -> str:
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
    m.major, m.minor = rng.choice([(m.major, 65535), (0, 0), (3, 0), (1, 1), (2, 0), (1, 0)])
    return f"version {m.major}.{m.minor}"


def make_case(seed: int) -> tuple[bytes, str, bool]:
    """The bytes of case ``seed``, what was changed, and whether it is read through a pipe."""
    rng = random.Random(seed)
    base = SAMPLES[seed % len(SAMPLES)]
    m = load(base.read_bytes())
    did = [base.name]
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

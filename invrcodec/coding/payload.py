"""A chunk's coded tensors decode to exactly the representation's shapes (spec "Field rules").

The container cannot see inside a DeepCABAC stream: its shape is not in the stream but in the header, so a
header whose ``hidden`` or ``l_x`` was changed (with its CRC recomputed) still parses. This check
entropy-decodes every tensor of a chunk (milliseconds per chunk, against the seconds of rendering it) and
refuses the chunk unless each stream decodes to its tensor's shape and ends exactly at its last byte.
``invr-probe`` runs it on every chunk and ``invr-dec`` on every chunk it will decode, before writing anything,
so the probe refuses what the decoder could not decode. The demuxer does not: it stays a reader of the
container, whatever the payload (a decoder meeting such a stream raises the same MalformedError).
"""

from __future__ import annotations

from invrcodec.errors import MalformedError
from invrcodec.format.structs import tensor_label
from invrcodec.types import CoderKind, Header, Packet

__all__ = ["check_payload"]


def check_payload(packet: Packet, header: Header, what: str, offset: int | None = None) -> None:
    """Refuse (MalformedError naming the chunk and tensor) a DeepCABAC tensor that does not decode to its
    shape. Raw coders' sizes and every tensor's QP are checked before, by the format layer and the rules."""
    if header.coder.kind != CoderKind.DEEPCABAC:
        return
    from invrcodec.coding import deepcabac  # lazily: reading a raw-coded file needs no nncodec

    k = header.coder
    shapes = header.representation.tensor_shapes()
    for i, t in enumerate(packet.tensors):  # every tile's tensors, each tile in tensor order
        try:
            deepcabac.decode_levels(t.data, shapes[i % len(shapes)][1], k.dependent_quantization,
                                    k.cabac_unary_length_minus1)
        except MalformedError as exc:
            raise MalformedError(f"{what}: {tensor_label(header, i)}: {exc}", offset) from exc

"""The file format: the ``.invr`` bytes and nothing else. The construct declarations of every structure
(:mod:`~invrcodec.format.structs`, spec/invr-format.md), the rules a reader applies to a crafted file
(:mod:`~invrcodec.format.rules`), and the muxer and demuxer, the only writers and readers of those bytes. It may
import the ground floor (:mod:`invrcodec.types`, :mod:`invrcodec.errors`, :mod:`invrcodec.fileio`) and construct;
never torch, PyAV or nncodec, and no layer above it.
"""

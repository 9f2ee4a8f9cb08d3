"""The encoding and decoding pipeline: frames to packets and back. The encoder (key chunks and P-chunks), its
GOP jobs and the executors that run them (in-process, batched, Ray; the jobs stand below both, so the
executors never import the encoder), the resume journal, the QP ladder (train once, code
many), presets and variants, the decoder, sampling at another size, rate or region, the decode-size guard, and
:func:`invrcodec.open`'s containers (:mod:`~invrcodec.codec.container`: the muxer and demuxer, and the decoder
when frames are asked for). It may import the ground floor, :mod:`invrcodec.format`, :mod:`invrcodec.coding` and
:mod:`invrcodec.net`; not media or the command lines. Importing this package imports nothing: torch comes with
the modules that need it.
"""

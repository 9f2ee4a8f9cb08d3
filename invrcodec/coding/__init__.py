"""Weight coding: a network's tensors to bytes and back. DeepCABAC (:mod:`~invrcodec.coding.deepcabac`, the only
nncodec import), the per-tensor-type QP plan and the weight coders (:mod:`~invrcodec.coding.weights`), the bit
estimate of rate-aware training (:mod:`~invrcodec.coding.ratemodel`), ``--bitrate``'s QP per chunk
(:mod:`~invrcodec.coding.ratecontrol`) and the check that a chunk's coded tensors decode
(:mod:`~invrcodec.coding.payload`). It may import the ground floor and :mod:`invrcodec.format` (the format's
field rules), nncodec, numpy and torch; not the network, the pipeline, media or the command lines.
"""

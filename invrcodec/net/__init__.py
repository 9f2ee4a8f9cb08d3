"""The network and its training: positional encodings and the INVR network (:mod:`~invrcodec.net.model`),
training a chunk (:mod:`~invrcodec.net.fit`), Adam without ``torch.optim``'s import of dynamo
(:mod:`~invrcodec.net.adam`), ``torch.compile`` and its kernel cache (:mod:`~invrcodec.net.compiling`) and
``--device`` resolution (:mod:`~invrcodec.net.devices`). It may import the ground floor, :mod:`invrcodec.format`
and :mod:`invrcodec.coding` (rate-aware training estimates the coded bits) and torch; not the pipeline, media or
the command lines.
"""

"""Weight coding of one chunk's network: DeepCABAC (INVR-C) or raw floats (INVR-U).

``encode_weights`` returns what the file stores *and* the weights the decoder will reconstruct from it, so
the encoder measures exactly the quality the decoder will see (the two are equal bit for bit).
Step sizes are chosen per tensor type, because the SIREN's w0 multiplies the error of every activated
layer's weights and biases but not of the linear output layer (spec: "Quantisation").
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from invrcodec import deepcabac
from invrcodec.errors import InvrFormatError
from invrcodec.types import CodedTensor, CoderKind, CoderParams, NetworkKind, Representation


@dataclass(frozen=True)
class QPPlan:
    """QPs per tensor type (nncodec QPs: the step doubles every 2^qp_density QP)."""

    first_weight: int
    hidden_weight: int
    bias: int
    out_weight: int
    out_bias: int

    def qp_for(self, name: str, layer_count: int) -> int:
        if name == "out.weight":
            return self.out_weight
        if name == "out.bias":
            return self.out_bias
        if name.endswith(".bias"):
            return self.bias
        return self.first_weight if name == "layers.0.weight" else self.hidden_weight


# invr-enc's --qp maps to the QP of the activated layers' weights as nncodec QP = qp - QP_ORIGIN, so that the
# user-facing scale is non-negative and coarser for larger values, like x264's. QP 38 gives a step of
# 2^-10.5 ~= 6.9e-4, close to the paper's S = 3^(-13/2) ~= 7.9e-4.
QP_ORIGIN = 80


def qp_plan(user_qp: int, rep: Representation) -> QPPlan:
    """Per-type QPs for a user QP, from tools/qpsweep.py on a trained 128x128 carphone chunk.

    The offsets equalise the PSNR lost per byte saved across tensor types: the first layer (fan-in of the
    whole encoding, every input of magnitude ~1, scaled by w0) is about 2.5x as sensitive as the hidden
    layers at the same step; biases and the linear output layer cost a few hundred bytes in all, so they
    are kept fine (docs/results.md, "Quantisation").
    """
    base = user_qp - QP_ORIGIN
    if rep.network != NetworkKind.SIREN:
        return QPPlan(base, base, base - 4, base - 4, base - 4)
    return QPPlan(first_weight=base - 2, hidden_weight=base + 2, bias=base - 4, out_weight=base - 4,
                  out_bias=base - 4)


def encode_weights(state: dict[str, np.ndarray], rep: Representation, coder: CoderParams,
                   plan: QPPlan | None, names: Collection[str] | None = None,
                   ) -> tuple[tuple[CodedTensor, ...], dict[str, np.ndarray]]:
    """Code every tensor (or only those in ``names``) in the order of ``rep.tensor_shapes()``; return the
    coded tensors and the weights a decoder reconstructs from them."""
    coded: list[CodedTensor] = []
    recon: dict[str, np.ndarray] = {}
    for name, shape in rep.tensor_shapes():
        if names is not None and name not in names:
            continue
        w = np.ascontiguousarray(state[name], dtype=np.float32).reshape(shape)
        if coder.kind == CoderKind.RAW_FLOAT32:
            data = w.astype("<f4").tobytes()
            coded.append(CodedTensor(0, data))
            recon[name] = w.copy()
        elif coder.kind == CoderKind.RAW_FLOAT16:
            half = w.astype("<f2")
            coded.append(CodedTensor(0, half.tobytes()))
            recon[name] = half.astype(np.float32)
        else:
            if plan is None:
                raise ValueError("DeepCABAC coding needs a QP plan")
            qp = plan.qp_for(name, rep.layers)
            levels = deepcabac.quantize(w, qp, coder.qp_density, coder.dependent_quantization,
                                        coder.cabac_unary_length_minus1)
            data = deepcabac.encode_levels(levels, coder.dependent_quantization, coder.cabac_unary_length_minus1)
            coded.append(CodedTensor(qp, data))
            recon[name] = deepcabac.dequantize(levels, qp, coder.qp_density)
    return tuple(coded), recon


def decode_weights(tensors: tuple[CodedTensor, ...], rep: Representation,
                   coder: CoderParams) -> dict[str, np.ndarray]:
    """Reconstruct a chunk's float32 weights from its coded tensors."""
    shapes = rep.tensor_shapes()
    if len(tensors) != len(shapes):
        raise InvrFormatError(f"chunk holds {len(tensors)} tensors, the representation needs {len(shapes)}")
    out: dict[str, np.ndarray] = {}
    for (name, shape), ct in zip(shapes, tensors):
        numel = int(np.prod(shape))
        if coder.kind in (CoderKind.RAW_FLOAT32, CoderKind.RAW_FLOAT16):
            dtype = "<f4" if coder.kind == CoderKind.RAW_FLOAT32 else "<f2"
            if len(ct.data) != numel * np.dtype(dtype).itemsize:
                raise InvrFormatError(f"tensor {name}: {len(ct.data)} bytes for {numel} {dtype} values")
            out[name] = np.frombuffer(ct.data, dtype=dtype).astype(np.float32).reshape(shape)
        else:
            levels = deepcabac.decode_levels(ct.data, shape, coder.dependent_quantization,
                                             coder.cabac_unary_length_minus1)
            out[name] = deepcabac.dequantize(levels, ct.qp, coder.qp_density)
    return out

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

from invrcodec.coding import deepcabac
from invrcodec.errors import InvrFormatError
from invrcodec.types import CodedTensor, CoderKind, CoderParams, NetworkKind, Representation, TensorRole


@dataclass(frozen=True)
class QPPlan:
    """QPs per tensor type (nncodec QPs: the step doubles every 2^qp_density QP)."""

    first_weight: int
    hidden_weight: int
    bias: int
    out_weight: int
    out_bias: int
    # The hidden layers' QPs rise evenly (rounded) from hidden_weight - ramp/2 for the first to hidden_weight +
    # ramp/2 for the last: an earlier hidden layer is more sensitive (tensor_qps).
    hidden_ramp: int = 0

    def tensor_qps(self, rep: Representation) -> dict[str, int]:
        """The QP of every tensor of ``rep``, by name."""
        hidden = rep.tensor_names(TensorRole.HIDDEN_WEIGHT)
        mid = (len(hidden) - 1) / 2
        ramp = {name: round(self.hidden_ramp * (k - mid) / max(len(hidden) - 1, 1))
                for k, name in enumerate(hidden)}
        return {name: self.qp_for(role) + ramp.get(name, 0) for name, _, role in rep.tensor_layout()}

    def qp_for(self, role: TensorRole) -> int:
        """The QP of a tensor of this role (:meth:`Representation.tensor_layout`)."""
        return {
            TensorRole.FIRST_WEIGHT: self.first_weight,
            TensorRole.HIDDEN_WEIGHT: self.hidden_weight,
            TensorRole.BIAS: self.bias,
            TensorRole.OUT_WEIGHT: self.out_weight,
            TensorRole.OUT_BIAS: self.out_bias,
        }[role]


# invr-enc's --qp maps to the QP of the activated layers' weights as nncodec QP = qp - QP_ORIGIN, so that the
# user-facing scale is non-negative and coarser for larger values, like x264's. QP 38 gives a step of
# 2^-10.5 ~= 6.9e-4, close to the paper's S = 3^(-13/2) ~= 7.9e-4.
QP_ORIGIN = 80


def qp_plan(user_qp: int, rep: Representation) -> QPPlan:
    """Per-type QPs for a user QP, from tools/qpsweep.py on a trained 128x128 carphone chunk.

    The offsets equalise the PSNR lost per byte saved across tensor types: the first layer (fan-in of the
    whole encoding, every input of magnitude ~1, scaled by w0) is about 2.5x as sensitive as the hidden
    layers at the same step; biases and the linear output layer cost a few hundred bytes in all, so they
    are kept fine (docs/results.md, "Quantisation"). Among the hidden layers the earlier are the more sensitive
    (on a rate-trained 45-frame chunk of either shared clip, dB lost per KB saved falls with depth by about half
    from the first hidden layer to the last), so their QPs ramp by 4 from first to last about the same mean:
    BD-rate -1.9% on both clips (docs/results.md, "Quantisation").
    """
    base = user_qp - QP_ORIGIN
    if rep.network != NetworkKind.SIREN:
        return QPPlan(base, base, base - 4, base - 4, base - 4)
    return QPPlan(first_weight=base - 2, hidden_weight=base + 2, bias=base - 4, out_weight=base - 4,
                  out_bias=base - 4, hidden_ramp=4)


class WeightCoder:
    """One way of storing a tensor: ``encode`` gives the stored form and the values a decoder will rebuild
    from it (bit for bit), ``decode`` rebuilds them. One subclass per :class:`CoderKind` (``CODERS``)."""

    def __init__(self, params: CoderParams) -> None:
        self.params = params

    def encode(self, w: np.ndarray, qp: int) -> tuple[CodedTensor, np.ndarray]:
        raise NotImplementedError

    def decode(self, coded: CodedTensor, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError


class RawCoder(WeightCoder):
    """IEEE floats, little-endian (INVR-U); the QP is unused and stored as 0."""

    dtype = "<f4"

    def encode(self, w: np.ndarray, qp: int) -> tuple[CodedTensor, np.ndarray]:
        stored = w.astype(self.dtype)
        return CodedTensor(0, stored.tobytes()), stored.astype(np.float32)

    def decode(self, coded: CodedTensor, shape: tuple[int, ...]) -> np.ndarray:
        numel = int(np.prod(shape))
        if len(coded.data) != numel * np.dtype(self.dtype).itemsize:
            raise InvrFormatError(f"{len(coded.data)} bytes for {numel} {self.dtype} values")
        return np.frombuffer(coded.data, dtype=self.dtype).astype(np.float32).reshape(shape)


class Raw16Coder(RawCoder):
    dtype = "<f2"


class DeepCabacCoder(WeightCoder):
    """Uniform (or dependent) quantisation at the tensor's QP, then DeepCABAC (spec "Quantisation")."""

    def encode(self, w: np.ndarray, qp: int) -> tuple[CodedTensor, np.ndarray]:
        k = self.params
        levels = deepcabac.quantize(w, qp, k.qp_density, k.dependent_quantization, k.cabac_unary_length_minus1)
        data = deepcabac.encode_levels(levels, k.dependent_quantization, k.cabac_unary_length_minus1)
        return CodedTensor(qp, data), deepcabac.dequantize(levels, qp, k.qp_density)

    def decode(self, coded: CodedTensor, shape: tuple[int, ...]) -> np.ndarray:
        k = self.params
        levels = deepcabac.decode_levels(coded.data, shape, k.dependent_quantization, k.cabac_unary_length_minus1)
        return deepcabac.dequantize(levels, coded.qp, k.qp_density)


CODERS: dict[CoderKind, type[WeightCoder]] = {
    CoderKind.DEEPCABAC: DeepCabacCoder,
    CoderKind.RAW_FLOAT32: RawCoder,
    CoderKind.RAW_FLOAT16: Raw16Coder,
}


def coder_for(params: CoderParams) -> WeightCoder:
    return CODERS[params.kind](params)


def encode_weights(state: dict[str, np.ndarray], rep: Representation, coder: CoderParams,
                   plan: QPPlan | None, names: Collection[str] | None = None,
                   reference: dict[str, np.ndarray] | None = None,
                   ) -> tuple[tuple[CodedTensor, ...], dict[str, np.ndarray]]:
    """Code every tensor (or only those in ``names``) in the order of ``rep.tensor_shapes()``; return the
    coded tensors and the weights a decoder reconstructs from them.

    With a ``reference`` (a P-chunk, spec "Prediction") each tensor is coded as its difference to the
    reference's tensor and reconstructed as ``reference + decoded difference`` in float32, as the decoder does.
    """
    if coder.kind == CoderKind.DEEPCABAC and plan is None:
        raise ValueError("DeepCABAC coding needs a QP plan")
    wc = coder_for(coder)
    qps = {} if plan is None else plan.tensor_qps(rep)
    coded: list[CodedTensor] = []
    recon: dict[str, np.ndarray] = {}
    for name, shape in rep.tensor_shapes():
        if names is not None and name not in names:
            continue
        w = np.ascontiguousarray(state[name], dtype=np.float32).reshape(shape)
        base = None if reference is None else np.asarray(reference[name], dtype=np.float32).reshape(shape)
        ct, values = wc.encode(w if base is None else w - base, qps.get(name, 0))
        coded.append(ct)
        recon[name] = values if base is None else base + values
    return tuple(coded), recon


def decode_weights(tensors: tuple[CodedTensor, ...], rep: Representation, coder: CoderParams,
                   reference: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Reconstruct a chunk's float32 weights from its coded tensors (added to ``reference``'s for a
    P-chunk)."""
    shapes = rep.tensor_shapes()
    if len(tensors) != len(shapes):
        raise InvrFormatError(f"chunk holds {len(tensors)} tensors, the representation needs {len(shapes)}")
    wc = coder_for(coder)
    out: dict[str, np.ndarray] = {}
    for (name, shape), ct in zip(shapes, tensors):
        try:
            values = wc.decode(ct, shape)
        except InvrFormatError as exc:
            raise InvrFormatError(f"tensor {name}: {exc}") from exc
        out[name] = values if reference is None else reference[name] + values
    return out


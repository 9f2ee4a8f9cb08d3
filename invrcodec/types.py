"""Typed descriptions shared by the format layer and the codec.

Nothing here imports torch, construct or nncodec. The numeric values of every ``IntEnum`` are the ids
written into ``.invr`` files (spec/invr-format.md, "Identifier registry"): they are literal, never derived,
and never reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from fractions import Fraction


class NetworkKind(IntEnum):
    """Activation family of the MLP."""

    SIREN = 1  # sin(w0 * (W x + b)) in every hidden layer, SIREN initialisation (Sitzmann et al.)
    RELU = 2  # ReLU MLP on the same encoding ("ReLU-Sin" in the paper)


class EncodingKind(IntEnum):
    """Positional encoding applied to each coordinate axis."""

    NONE = 0  # raw (x, y, t) only ("INVR-None")
    SINUSOIDAL = 1  # paper eq. 2: sin/cos(sigma^k * pi * p), k = 0..l-1
    GAUSSIAN = 2  # paper eq. 3: exp(-(p - c_k)^2 / (2 sigma^2)), centres c_k evenly over [-1, 1]


class CoordConvention(IntEnum):
    """How pixel indices map to network inputs and outputs."""

    # x = 2 * (i / W - 0.5) for column i (likewise y with H, t with the chunk's frame count, paper eq. 4);
    # the network outputs R, G, B in [-1, 1], code value = round((v + 1) * 127.5) clamped to 0..255.
    PAPER_EQ4 = 1


class Prediction(IntEnum):
    """What a chunk's coded tensors are (spec "Prediction")."""

    KEY = 0  # the chunk's weights, coded on their own: decoding may start here
    PREVIOUS = 1  # the residual to the reconstructed weights of the chunk before it (a "P-chunk")


class CoderKind(IntEnum):
    """How the weights of each chunk are stored."""

    DEEPCABAC = 1  # uniform (optionally dependent) quantisation + DeepCABAC, from Fraunhofer's nncodec
    RAW_FLOAT32 = 2  # INVR-U: IEEE float32 little-endian
    RAW_FLOAT16 = 3  # IEEE float16 little-endian


class TensorRole(Enum):
    """What a weight tensor is to the network; the coder picks its quantisation step by it (spec
    "Quantisation"), and the encoder its coding stage. Not written into files."""

    FIRST_WEIGHT = "first_weight"  # the first layer's weights: fan-in of the whole encoding
    HIDDEN_WEIGHT = "hidden_weight"  # the weights of the activated layers after the first
    BIAS = "bias"  # an activated layer's bias
    OUT_WEIGHT = "out_weight"  # the linear output layer's weights
    OUT_BIAS = "out_bias"


@dataclass(frozen=True)
class Representation:
    """Everything that defines the network of one chunk, hence every tensor's shape."""

    network: NetworkKind = NetworkKind.SIREN
    hidden: int = 128  # width of every hidden layer
    layers: int = 4  # number of hidden (activated) layers; a final linear layer maps to RGB
    w0: float = 30.0
    encoding: EncodingKind = EncodingKind.SINUSOIDAL
    enc_dims: tuple[int, int, int] = (64, 64, 32)  # l_x, l_y, l_t
    sigma: float = 1.4
    prepend_coord: bool = True
    coords: CoordConvention = CoordConvention.PAPER_EQ4
    chunk_frames: int = 15

    @property
    def in_features(self) -> int:
        """Width of the encoded input vector."""
        raw = 3 if (self.prepend_coord or self.encoding == EncodingKind.NONE) else 0
        lx, ly, lt = self.enc_dims
        if self.encoding == EncodingKind.SINUSOIDAL:
            return raw + 2 * (lx + ly + lt)
        if self.encoding == EncodingKind.GAUSSIAN:
            return raw + lx + ly + lt
        return raw

    def tensor_layout(self) -> list[tuple[str, tuple[int, ...], TensorRole]]:
        """Name, shape and role of every weight tensor in their coded order (spec: "Tensor order"). The names
        are :class:`invrcodec.net.model.INVRNet`'s parameter names; this is the one place that spells them."""
        layout: list[tuple[str, tuple[int, ...], TensorRole]] = []
        fan_in = self.in_features
        for i in range(self.layers):
            role = TensorRole.FIRST_WEIGHT if i == 0 else TensorRole.HIDDEN_WEIGHT
            layout.append((f"layers.{i}.weight", (self.hidden, fan_in), role))
            layout.append((f"layers.{i}.bias", (self.hidden,), TensorRole.BIAS))
            fan_in = self.hidden
        layout.append(("out.weight", (3, fan_in), TensorRole.OUT_WEIGHT))
        layout.append(("out.bias", (3,), TensorRole.OUT_BIAS))
        return layout

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes of the weight tensors in their coded order (spec: "Tensor order")."""
        return [(name, shape) for name, shape, _ in self.tensor_layout()]

    def tensor_names(self, *roles: TensorRole) -> list[str]:
        """Names of the tensors of the given roles (every tensor when none is given), in coded order."""
        return [name for name, _, role in self.tensor_layout() if not roles or role in roles]

    @property
    def parameter_count(self) -> int:
        n = 0
        for _, shape in self.tensor_shapes():
            size = 1
            for d in shape:
                size *= d
            n += size
        return n


@dataclass(frozen=True)
class CoderParams:
    """The weight coder and its quantisation parameters (per-tensor QPs live in each chunk)."""

    kind: CoderKind = CoderKind.DEEPCABAC
    qp_density: int = 2  # step = 2^(qp >> d) * (1 + (qp & (2^d - 1)) / 2^d) / 2^... see spec "Quantisation"
    dependent_quantization: bool = False
    cabac_unary_length_minus1: int = 10
    nncodec_version: str = ""  # version of the DeepCABAC implementation that wrote the file


@dataclass(frozen=True)
class StreamInfo:
    """Facts about the source video that a decoder reproduces or passes on."""

    width: int
    height: int
    frame_count: int  # 0 while unknown (a muxer writing to a pipe); the index is authoritative
    frame_rate: Fraction = Fraction(25, 1)
    time_base: Fraction = Fraction(1, 25)
    sample_aspect_ratio: Fraction = Fraction(1, 1)
    pix_fmt: str = "yuv420p"  # the source's pixel format, e.g. for invr-dec's default output
    color_range: int = 0  # FFmpeg / ITU-T H.273 codes; 0 = unspecified
    color_space: int = 2  # 2 = unspecified
    color_primaries: int = 2
    color_trc: int = 2

    @property
    def duration(self) -> Fraction:
        """Duration in seconds (frame_count / frame_rate)."""
        return Fraction(self.frame_count) / self.frame_rate if self.frame_rate else Fraction(0)


@dataclass(frozen=True)
class CodedTensor:
    """One weight tensor as stored: its QP (DeepCABAC) and its coded bytes."""

    qp: int
    data: bytes


@dataclass(frozen=True)
class Packet:
    """One coded chunk: the unit the encoder emits, the muxer writes and the decoder consumes."""

    index: int  # chunk number, 0-based
    first_frame: int
    frame_count: int
    tensors: tuple[CodedTensor, ...]
    train_psnr: float  # RGB PSNR (dB) of the chunk as the decoder will reconstruct it
    prediction: Prediction = Prediction.KEY

    @property
    def size(self) -> int:
        return sum(len(t.data) for t in self.tensors)


@dataclass(frozen=True)
class Tile:
    """A rectangle of the frame with a network of its own in every chunk: ``width x height`` pixels at
    column ``x``, row ``y``. Its network covers the tile widened by ``margins`` (left, top, right, bottom):
    the grid's overlap on every side that borders another tile, none on the frame's edges (spec "Tiles")."""

    x: int
    y: int
    width: int
    height: int
    margins: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def area(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the rectangle the tile's network covers, trained and sampled as a frame."""
        left, top, right, bottom = self.margins
        return self.x - left, self.y - top, self.width + left + right, self.height + top + bottom


@dataclass(frozen=True)
class TileGrid:
    """How a frame is cut into tiles (spec "Tiles"): ``tile_width x tile_height`` pixels from the top-left
    corner, the last column and the last row taking what remains of the frame. Each tile of a chunk has its own
    network, trained and sampled as if it were a frame of the size of its area: the tile and ``overlap`` pixels
    of each neighbour, where a decoder blends the two networks (version 4; 0 in a 3.x file)."""

    tile_width: int
    tile_height: int
    overlap: int = 0

    def columns(self, width: int) -> tuple[tuple[int, int], ...]:
        """(first column, width) of every tile column of a ``width``-pixel frame."""
        return tuple((x, min(self.tile_width, width - x)) for x in range(0, width, self.tile_width))

    def rows(self, height: int) -> tuple[tuple[int, int], ...]:
        """(first row, height) of every tile row of a ``height``-pixel frame."""
        return tuple((y, min(self.tile_height, height - y)) for y in range(0, height, self.tile_height))

    def tiles(self, width: int, height: int) -> tuple[Tile, ...]:
        """Every tile of a ``width x height`` frame, row by row from the top-left (the coded order)."""
        o = self.overlap
        return tuple(Tile(x, y, w, h, (o if x else 0, o if y else 0, o if x + w < width else 0,
                                        o if y + h < height else 0))
                     for y, h in self.rows(height) for x, w in self.columns(width))

    def count(self, width: int, height: int) -> int:
        """Tiles of a ``width x height`` frame."""
        return -(-width // self.tile_width) * -(-height // self.tile_height)

    def largest_overlap(self, width: int, height: int) -> int | None:
        """The largest overlap whose blends stay apart (spec "Tiles"): half the narrowest tile side along an axis
        cut into more than one tile, so a pixel is blended from at most two tiles per axis. None when the grid
        cuts neither axis."""
        sides = [w for _, w in self.columns(width)] if width > self.tile_width else []
        sides += [h for _, h in self.rows(height)] if height > self.tile_height else []
        return min(sides) // 2 if sides else None

    def overlap_fits(self, width: int, height: int) -> bool:
        """Whether the grid's overlap is at most :meth:`largest_overlap`."""
        top = self.largest_overlap(width, height)
        return top is None or self.overlap <= top


@dataclass(frozen=True)
class Metadata:
    """Who wrote the file and how: shown by invr-probe, never needed to decode."""

    encoder: str = ""  # e.g. "invrcodec 0.1.0"
    settings: str = ""  # x264-style "key=value key=value" of the encoder settings used


@dataclass(frozen=True)
class Header:
    """Everything in a .invr file before the first chunk, as the codec sees it."""

    stream: StreamInfo
    representation: Representation
    coder: CoderParams
    metadata: Metadata = Metadata()
    tiles: TileGrid | None = None  # None: one network per chunk covers the whole frame (a 1.x or 2.x file)

    def tile_list(self) -> tuple[Tile, ...]:
        """The tiles of a chunk in coded order: the whole frame when the file has no tile grid."""
        s = self.stream
        return self.tiles.tiles(s.width, s.height) if self.tiles else (Tile(0, 0, s.width, s.height),)


@dataclass(frozen=True)
class IndexEntry:
    """One row of the chunk index: where a chunk is and what it holds."""

    first_frame: int
    frame_count: int
    offset: int  # byte offset of the chunk record from the start of the file
    size: int  # byte size of the whole chunk record
    crc32: int  # CRC32 of the chunk record (spec: "Chunk record")
    train_psnr: float
    prediction: Prediction = Prediction.KEY  # the chunk's, so that a reader seeks without reading chunks


@dataclass(frozen=True)
class AudioStreamInfo:
    """A compressed audio stream stored as it came from the source (spec "AudioStream"): what an output
    muxer needs to take its packets by stream copy, or a decoder to decode them."""

    codec: str  # FFmpeg's codec name (its descriptor's, e.g. "aac", "mp3"), lower-case letters, digits, "_"
    sample_rate: int
    channels: int
    channel_layout: str = ""  # FFmpeg's layout name, e.g. "stereo", "5.1"; "" = unspecified
    time_base: Fraction = Fraction(1, 48000)  # of the packets' pts, dts and duration
    frame_size: int = 0  # samples per packet when constant; 0 = unknown or variable
    bit_rate: int = 0  # bits per second as the source declared it; 0 = unknown (informative)
    extradata: bytes = b""  # the codec's global header (AAC's AudioSpecificConfig, ...), as in the source

    @property
    def layout_text(self) -> str:
        """The channel layout's name, or the channel count when the source named none."""
        return self.channel_layout or f"{self.channels} channel{'s' if self.channels != 1 else ''}"

    def describe(self) -> str:
        """``aac, 48000 Hz, 5.1``: for messages."""
        return f"{self.codec}, {self.sample_rate} Hz, {self.layout_text}"


@dataclass(frozen=True)
class AudioPacket:
    """One compressed audio packet, its payload exactly as the source's demuxer gave it.

    Timestamps count ``time_base`` ticks of its stream from the instant of the video's frame 0 (a packet that
    starts before the first frame has a negative pts)."""

    stream: int  # the audio stream's number in the file, 0-based
    pts: int
    dts: int
    duration: int  # ticks; 0 = unknown
    data: bytes
    keyframe: bool = True
    discard: bool = False  # FFmpeg's AV_PKT_FLAG_DISCARD: decode, then drop the samples (priming)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class AudioIndexEntry:
    """One row of the audio index: where an audio record is and what span of its stream it holds."""

    offset: int  # byte offset of the AUDP record from the start of the file
    size: int  # byte size of the whole record
    crc32: int  # the record's CRC32
    stream: int
    packet_count: int
    first_dts: int  # dts of its first packet
    last_dts: int  # dts of its last packet
    start: int  # the smallest pts of its packets
    end: int  # the largest pts + duration of its packets

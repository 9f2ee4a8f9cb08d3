"""Fitting chunks: train an :class:`INVRNet` on each chunk of T frames (paper sec. 3.1.2, "Model Training").

Loss is MSE + lambda * L1(weights) (eq. 5). Two recipes share this loop: the paper's (one whole random frame
per step, constant learning rate, textbook forward pass) and ours (random pixel batches from the whole chunk,
per-axis first-layer tables, cosine-decayed learning rate). Mixed precision on CUDA, as the paper.

Several chunks can train at once as one :class:`INVRBatch` (:func:`fit_chunks`): on a GPU one small network
leaves most of the device idle, B of them in batched matrix products do not. Each chunk still trains exactly
as it would alone (its own seed, pixel batches, Adam moments, early stop and divergence retry); a batch of
one is :func:`fit_chunk`, operation for operation.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from invrcodec.net.adam import Adam
from invrcodec.clock import PhaseClock
from invrcodec.net.compiling import compile_fn
from invrcodec.errors import InvrEncodeError
from invrcodec.metrics import flat_psnr, pooled_psnr, psnr_from_mse, rgb_psnr
from invrcodec.net.model import INVRBatch, INVRNet, from_rgb8, full_encoding, to_rgb8
from invrcodec.coding.ratemodel import RateTarget, tensor_bits
from invrcodec.types import Representation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """How a chunk is trained."""

    steps: int  # step cap
    lr: float
    schedule: Literal["constant", "cosine"] = "cosine"
    batch: int = 16384  # random pixels per step from the whole chunk; 0 = one whole random frame (paper)
    l1: float = 1e-6  # lambda of eq. 5
    arithmetic: Literal["tables", "reference"] = "tables"  # per-axis tables, or the textbook forward pass
    # Full-chunk PSNR check interval (and the last step; also when the running estimate meets the target);
    # 0 = no checks but those a target asks for (the result's psnr is then nan).
    eval_every: int = 250
    warmup: int = 0  # linear learning-rate warm-up steps (at most a tenth of the steps)
    grid_frames: int = 4  # "tables" batches are k frames x m random rows x n random columns, k*m*n ~= batch
    compile: bool = False  # torch.compile the training trunk: on CUDA, and for long fits on the CPU (compiles())
    # Quantisation-aware refinement (see invrcodec.codec.encoder): after training, the tensors are coded in stages
    # and, after each stage but the last, the tensors not coded yet are trained for refine * steps steps (from
    # refine_lr, cosine-decayed) so that they absorb the quantisation error of those already coded. 0 = off.
    refine: float = 0.0
    refine_lr: float = 1e-4
    # What refinement adds to a chunk that stopped early at a --psnr target (dB), counted when training stops:
    # the stop comes mid-schedule, at a learning rate whose noise the refinement's low, decaying rate anneals
    # away. Coded at the default QP, chunks stopped at 29 dB decoded at 29.87-31.03 dB over eight 15-frame
    # windows of the two shared clips (docs/results.md, "The whole command"); this is that least gain, rounded
    # down. Measured for `fast` only; 0 = training stops at the target itself. Used only when refine > 0.
    refine_gain: float = 0.0
    # Mixed precision on the CPU (bfloat16 autocast; the sine stays float32) where the CPU computes bfloat16
    # natively: 1.6-1.9x faster per step; after the 800-step `fast` fit 34.34 / 35.80 dB against float32's
    # 34.55 / 35.32 (bigbuckbunny / carphone). CUDA always uses float16 mixed precision, as the paper.
    cpu_bf16: bool = False
    # Rate-aware training (docs/results.md, "Rate-aware training"): over the last rate_span of the steps every
    # trained tensor carries uniform noise of its coded quantiser step and each chunk's loss adds lambda times
    # the DeepCABAC bits invrcodec.coding.ratemodel estimates for its weights, lambda = rate * step(qp)^2 per squared
    # error summed over the chunk's samples, at the encoder's QP (fit_chunks(rate=...)). 0 = off.
    rate: float = 0.0
    rate_span: float = 0.3
    # The width lr (and p_lr) were chosen at: a wider network's hidden layers sum more inputs, so one Adam step
    # (about lr per weight) moves each pre-activation by about lr x width, and the rates take lr_width / hidden
    # of themselves; a narrower network keeps them. Measured on the 45-frame chunks of hidden 192 (docs/results.md,
    # "Quality that rises with bits"): tears_of_steel's first chunk trained to 17.37 dB at 1.5e-3 and 29.21 dB at
    # 1e-3; sintel's and carphone's within 0.02 dB at either. 0 = the rates as given (the paper's recipe).
    lr_width: int = 128

    # P-chunks (invrcodec.codec.encoder): trained from the reference chunk's decoded weights for p_steps * steps
    # steps at p_lr (cosine-decayed after p_warmup steps of linear warm-up), with the L1 term of eq. 5 at p_l1
    # on the difference to the reference, which is what is coded.
    p_steps: float = 0.35
    p_lr: float = 5e-4
    p_warmup: int = 0
    # 10x the key chunks' lambda: -8% rate at equal PSNR on carphone's P-chunks (docs/results.md, "Prediction")
    p_l1: float = 1e-5
    # Which tensors a P-chunk trains: "all", or "first" (the first layer, every bias and the output layer; the
    # hidden layers' weights stay exactly the reference's, so their residuals are all zero and cost almost
    # nothing to code).
    p_train: Literal["all", "first"] = "all"
    p_rate: float = 0.0  # Recipe.rate of P-chunks (on the residual); not measured, so off
    # A chunk of fewer frames than the representation's (a clip's last chunk, or a clip shorter than one
    # chunk) trains fewer steps: in proportion to its frames down to frames_knee of the chunk (a network for
    # 90 frames has twice a 45-frame one's steps, presets.py), below that by the power frames_exponent of its
    # frames. log 2 / log 3: a 45-frame network has twice the steps of a 15-frame one. 0 = the same steps for
    # any length.
    frames_exponent: float = math.log(2) / math.log(3)
    frames_knee: float = 0.5

    def for_frames(self, frames: int, chunk_frames: int) -> Recipe:
        """The recipe of a chunk of ``frames`` frames in a representation of ``chunk_frames`` (see
        frames_exponent): fewer steps and checks, the same learning rates."""
        if frames >= chunk_frames or self.frames_exponent == 0:
            return self
        share, knee = frames / chunk_frames, self.frames_knee
        scale = share if share >= knee else knee * (share / knee) ** self.frames_exponent
        return dataclasses.replace(self, steps=max(1, round(self.steps * scale)),
                                   eval_every=max(1, round(self.eval_every * scale)) if self.eval_every else 0)

    def lr_scale(self, hidden: int) -> float:
        """The factor on lr (and p_lr) for a network of ``hidden`` (see lr_width)."""
        return min(1.0, self.lr_width / hidden) if self.lr_width else 1.0

    def for_p_chunk(self) -> Recipe:
        """The recipe of a P-chunk (see p_steps)."""
        return dataclasses.replace(self, steps=max(1, round(self.p_steps * self.steps)), lr=self.p_lr,
                                   warmup=self.p_warmup, l1=self.p_l1,
                                   eval_every=max(1, round(self.p_steps * self.eval_every)), rate=self.p_rate)

    @property
    def warmup_steps(self) -> int:
        """The warm-up actually used: at most a tenth of the steps, so a short --steps run still learns."""
        return min(self.warmup, self.steps // 10)


@dataclass(frozen=True)
class FitProgress:
    step: int
    steps: int
    psnr: float  # last measured full-chunk PSNR (dB), or the running estimate between checks
    elapsed: float


@dataclass
class FitResult:
    state: dict[str, np.ndarray]  # float32 weights by tensor name
    psnr: float  # full-chunk RGB PSNR of the float weights, 8-bit rounded
    steps: int
    seconds: float
    retries: int


# The guard against collapsed chunks (issue 23). A SIREN trained too hard can fall into a flat picture: every
# frame its mean colour, a network that learned nothing of the picture. Such a chunk is never written. From
# WATCH_STEPS (or a tenth of the steps, if more) on, a chunk whose running PSNR estimate or full-chunk check is
# not COLLAPSE_MARGIN_DB above its flat picture (metrics.flat_psnr), or whose check falls COLLAPSE_DROP_DB below
# its best check, leaves training as collapsed; fit_chunks retries it with another seed at half the learning
# rate, and after the last try keeps its best checked state, or fails (InvrEncodeError) if it never had one.
# A fit shorter than WATCH_STEPS is not judged: it has not had the time to leave its initial, near-flat output.
COLLAPSE_MARGIN_DB = 1.0
COLLAPSE_DROP_DB = 3.0
WATCH_STEPS = 200
# A fit at or above this PSNR is never called collapsed, however flat its picture: a tile of sky or of a
# letterbox bar is nearly its own mean colour (a uniform one is exactly, its flat PSNR infinite), and a network
# that draws it at 40 dB has lost nothing a viewer sees.
CLEAR_PSNR_DB = 40.0


def collapse_floor(frames: np.ndarray) -> float:
    """The PSNR a fit of uint8 ``frames`` must beat not to be called collapsed: its flat picture's
    (metrics.flat_psnr) plus COLLAPSE_MARGIN_DB, at most CLEAR_PSNR_DB."""
    return min(flat_psnr(frames) + COLLAPSE_MARGIN_DB, CLEAR_PSNR_DB)


def watch_from(recipe: Recipe) -> int:
    """The first step at which the collapse guard judges a fit of ``recipe``."""
    return max(WATCH_STEPS, 2 * recipe.warmup_steps, recipe.steps // 10)


# A fit can also fall between two checks and stay fallen, above the flat picture: chaplin's 90 frames at
# 128x128 (fast, QP 38, 6,400 steps) climbed to 20.8 dB by step 800 and fell to 15.4 dB by step 1,400 at a
# learning rate still near its peak, then ended at 16.9 dB; the first check, at step 1,600, never saw the
# 20.8 dB. So the running estimate is judged too: one that stays COLLAPSE_DROP_DB below its best for FALL_STEPS
# steps is a fall. A dip that Adam climbs out of is not: airplane_pan (fast, QP 38) was 3.7 dB below its best
# for about 100 steps around step 800 and back above it by step 1,000, and at 100 steps the rule retried it.
# Until rate-aware training starts: its weight noise lowers the estimate by design.
FALL_STEPS = 300


@dataclass
class FallWatch:
    """One fit's running PSNR estimates against the fall rule (FALL_STEPS)."""

    peak: float = -math.inf  # the best estimate seen
    low_since: int | None = None  # the step since which the estimates have stayed COLLAPSE_DROP_DB below it

    def fallen(self, step: int, estimate: float) -> bool:
        """Take the estimate at ``step``; whether the fit has now stayed fallen for FALL_STEPS steps."""
        self.peak = max(self.peak, estimate)
        if estimate >= self.peak - COLLAPSE_DROP_DB:
            self.low_since = None
            return False
        if self.low_since is None:
            self.low_since = step
        return step - self.low_since >= FALL_STEPS


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere it is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@torch.no_grad()
def render_chunks(batch: INVRBatch, sizes: tuple[int, int, int], chunks: Sequence[int],
                  max_pixels: int = 0) -> list[torch.Tensor]:
    """Frames of each chunk ``chunks`` of a batch, uint8 ``(T, H, W, 3)`` each, through the per-axis tables,
    ``max_pixels`` per forward pass (at least a frame)."""
    t_n, h, w = sizes
    dev = batch.tensors[0].device
    frame_batch = max(1, min(t_n, max_pixels // (h * w)))
    out = []
    for i in chunks:
        sel = None if batch.count == 1 else torch.tensor([i], device=dev)
        tables = batch.axis_tables(sizes, sel)
        frames = []
        for t0 in range(0, t_n, frame_batch):
            idx = torch.arange(t0, min(t_n, t0 + frame_batch), device=dev)[None]
            frames.append(to_rgb8(batch.forward_frames(idx, sizes, sel, tables))[0])
        out.append(torch.cat(frames))
    return out


def _grid_batch(sizes: tuple[int, int, int], recipe: Recipe, gen: torch.Generator,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """k distinct frames, and for each its own m distinct rows and n distinct columns."""
    t_n, h, w = sizes
    k = max(1, min(t_n, recipe.grid_frames))
    per_frame = recipe.batch / k
    m = max(1, min(h, round(math.sqrt(per_frame * h / w))))
    n = max(1, min(w, round(per_frame / m)))
    ti = torch.randperm(t_n, generator=gen)[:k]
    yi = torch.rand(k, h, generator=gen).argsort(dim=1)[:, :m]
    xi = torch.rand(k, w, generator=gen).argsort(dim=1)[:, :n]
    return ti.to(device), yi.to(device), xi.to(device)


def _lr_at(step: int, recipe: Recipe) -> float:
    warmup = recipe.warmup_steps
    if warmup and step < warmup:
        return recipe.lr * (step + 1) / warmup
    if recipe.schedule == "constant":
        return recipe.lr
    progress = (step - warmup) / max(1, recipe.steps - warmup)
    return recipe.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def fit_chunk(frames: np.ndarray, rep: Representation, recipe: Recipe, *, device: torch.device,
              seed: int = 0, psnr_target: float | None = None, amp: bool | None = None,
              progress: Callable[[FitProgress], None] | None = None, max_retries: int = 2,
              init: dict[str, np.ndarray] | None = None,
              frozen: dict[str, np.ndarray] | None = None,
              anchor: dict[str, np.ndarray] | None = None, rate: RateTarget | None = None) -> FitResult:
    """Train a network on ``frames`` (uint8 ``(T, H, W, 3)``), retrying with a lower rate if it diverges.

    ``init`` starts from given weights instead of the SIREN initialisation; ``frozen`` fixes some tensors at
    given values (they are not trained, and the result holds exactly those values); ``anchor`` moves the L1
    term of eq. 5 from the weights to their difference to these weights (what a P-chunk codes); ``rate``
    trains for the rate at a QP (see :func:`fit_chunks`).
    """
    return fit_chunks([frames], rep, recipe, device=device, seeds=[seed], psnr_target=psnr_target, amp=amp,
                      progress=progress, max_retries=max_retries, inits=[init or {}],
                      frozen=[frozen or {}], anchors=None if anchor is None else [anchor], rate=rate)[0]


def fit_chunks(chunks: Sequence[np.ndarray], rep: Representation, recipe: Recipe, *, device: torch.device,
               seeds: Sequence[int], psnr_target: float | None = None, amp: bool | None = None,
               progress: Callable[[FitProgress], None] | None = None, max_retries: int = 2,
               inits: Sequence[dict[str, np.ndarray]] | None = None,
               frozen: Sequence[dict[str, np.ndarray]] | None = None,
               anchors: Sequence[dict[str, np.ndarray] | None] | None = None,
               clock: PhaseClock | None = None, rate: RateTarget | None = None) -> list[FitResult]:
    """Train one network per chunk, all chunks at once (:class:`INVRBatch`); frames must have equal sizes.

    Each chunk trains as :func:`fit_chunk` would train it alone, with its own seed, batches and Adam state:
    the loss is the sum of the chunks' losses, so no chunk's gradient depends on another chunk. A chunk that
    meets ``psnr_target`` leaves the batch; a chunk that diverges leaves it too and is retried, with the
    other diverged chunks, at half the rate. ``frozen`` must name the same tensors for every chunk.
    ``anchors`` (see :func:`fit_chunk`) may be None for some chunks (key chunks: L1 on the weights).
    ``progress`` sees the PSNR of the batch's mean squared error. ``clock`` is told the time of the steps
    that compile (phase ``compile``) and of the full-chunk PSNR checks (``check``). With ``rate`` (a QP's
    :class:`invrcodec.coding.ratemodel.RateTarget`) the steps from ``rate.start`` on train for rate and distortion:
    the trained tensors carry quantisation noise and the loss adds the estimated bits (of the difference to
    the anchor, for a P-chunk).
    """
    n = len(chunks)
    clock = clock or PhaseClock()
    if n == 0:
        return []
    if len({c.shape[1:] for c in chunks}) != 1:
        raise ValueError("chunks trained together must have equal frame sizes")
    inits = list(inits) if inits is not None else [{}] * n
    frozen = list(frozen) if frozen is not None else [{}] * n
    anchors = list(anchors) if anchors is not None else [None] * n
    if len({frozenset(f) for f in frozen}) != 1:
        raise ValueError("chunks trained together must freeze the same tensors")
    results: list[FitResult | None] = [None] * n
    kept: list[FitResult | None] = [None] * n  # each chunk's best checked state over its failed tries
    pending = list(range(n))
    lr_scale = recipe.lr_scale(rep.hidden)
    for attempt in range(max_retries + 1):
        starts = [_Start(seeds[i] + 7919 * attempt, inits[i], frozen[i], anchors[i]) for i in pending]
        how = _Attempt(rep, recipe, device, psnr_target, amp, lr_scale, rate, clock)
        done, diverged = _fit_batch([chunks[i] for i in pending], starts, how, progress)
        for j, result in done.items():
            result.retries = attempt
            results[pending[j]] = result
        for j, exc in sorted(diverged.items()):
            i = pending[j]
            if exc.best is not None and (kept[i] is None or exc.best.psnr > kept[i].psnr):  # type: ignore[union-attr]
                exc.best.retries = attempt
                kept[i] = exc.best
            if attempt < max_retries:
                log.warning("training %s at step %d (%s); retrying at half the learning rate",
                            exc.kind, exc.step, exc)
        pending = [pending[j] for j in sorted(diverged)]
        if not pending:
            return [r for r in results if r is not None]
        lr_scale *= 0.5
    if any(kept[i] is None for i in pending):
        raise InvrEncodeError(f"training diverged or collapsed {max_retries + 1} times; chunk not written "
                              f"({exc})")
    for i in pending:
        best = kept[i]
        assert best is not None
        log.warning("training failed %d times; keeping the best checked state (%.2f dB at step %d)",
                    max_retries + 1, best.psnr, best.steps)
        results[i] = best
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class _Attempt:
    """What every chunk of one attempt at :func:`fit_chunks` shares: how it trains and what it reports to."""

    rep: Representation
    recipe: Recipe  # for chunks of rep.chunk_frames frames (a shorter chunk's: recipe.for_frames)
    device: torch.device
    psnr_target: float | None = None
    amp: bool | None = None
    lr_scale: float = 1.0  # the width's (Recipe.lr_scale), halved for each retry after a divergence
    rate: RateTarget | None = None
    clock: PhaseClock = dataclasses.field(default_factory=PhaseClock)


@dataclass(frozen=True)
class _Start:
    """Where one chunk's training starts: its seed, initial and frozen weights, and L1 anchor."""

    seed: int
    init: dict[str, np.ndarray]
    frozen: dict[str, np.ndarray]
    anchor: dict[str, np.ndarray] | None


class _Diverged(Exception):
    """A chunk that left training without a result: diverged (non-finite) or collapsed (flat, or fallen
    from its best check); ``best`` is its best checked state, where it had one the guard accepted."""

    def __init__(self, step: int, why: str, kind: str = "diverged", best: FitResult | None = None) -> None:
        super().__init__(why)
        self.step, self.kind, self.best = step, kind, best


@dataclass(frozen=True)
class _How:
    """What training does differently on a device."""

    amp_always: bool  # mixed precision whatever the recipe says (the paper's on CUDA)
    amp_dtype: torch.dtype  # float16 (with loss scaling) or bfloat16
    poll: int  # read losses back every poll steps: on a GPU every read stalls the queue
    check_pixels: int  # pixels per forward pass of a PSNR check (at least a frame)


def _how(device: torch.device) -> _How:
    if device.type == "cuda":
        return _How(True, torch.float16, 10, 1 << 20)
    return _How(False, torch.bfloat16, 1, 0)


def _init_batch(rep: Representation, starts: Sequence[_Start], device: torch.device) -> INVRBatch:
    """Each chunk's network initialised as :func:`fit_chunk` initialises it alone, then stacked."""
    nets = []
    for start in starts:
        torch.manual_seed(start.seed)
        net = INVRNet(rep)
        with torch.no_grad():
            for name, p in net.named_parameters():
                value = start.frozen.get(name, start.init.get(name))
                if value is not None:
                    p.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)).reshape(p.shape))
        nets.append(net)
    return INVRBatch.stack(nets).to(device)


def _require_grads(batch: INVRBatch, trainable: list[bool] | None) -> None:
    """Gradients for the trainable tensors only, or (None) for all of them."""
    for t, train in zip(batch.tensors, trainable or [True] * len(batch.tensors)):
        t.requires_grad_(train)


def _trained(batch: INVRBatch, trainable: list[bool]) -> list[torch.Tensor]:
    return [t for t, train in zip(batch.tensors, trainable) if train]


def _compact(batch: INVRBatch, opt: Adam, keep: list[int], trainable: list[bool],
             lr: float) -> tuple[INVRBatch, Adam]:
    """The batch and optimiser restricted to chunks ``keep``, each chunk's Adam moments carried over."""
    new = batch.select(keep)
    idx = torch.tensor(keep, device=batch.tensors[0].device)
    new_params = _trained(new, trainable)
    new_opt = Adam(new_params, lr=lr)
    for old, fresh in zip(_trained(batch, trainable), new_params):
        state = opt.state.get(old)
        if state:
            new_opt.state[fresh] = {k: (v.index_select(0, idx) if k != "step" else v.clone())
                                    for k, v in state.items()}
    return new, new_opt


# torch.compile on the CPU costs about 2 s in a process's first compiled fit (importing dynamo and inductor,
# tracing, loading the cached kernels; later fits of the same shapes reuse the graph) and then saves 12-18% of
# a step over the eager trunk (INVRBatch.train_trunk), measured on a 2-core EPYC in bfloat16 and float32
# (docs/results.md, "The whole command, eager"). Compiled and eager steps round differently, so whether a fit
# compiles is decided from the fit alone, never from what the process did before: a resumed encode, a Ray
# worker and an uninterrupted encode write the same bytes. On the CPU a fit compiles when it trains at least
# CPU_COMPILE_STEPS steps with no PSNR target (a fit that stops at its target, as under --psnr, stops within a
# few hundred steps, before the compile would pay); refinement and P-chunks are shorter and train eagerly. On
# CUDA, where an eager step launches many small kernels, a recipe with compile=True always compiles, as before
# (not yet measured on a GPU). The environment's INVRCODEC_COMPILE (auto, always, never) overrides the rule.
CPU_COMPILE_STEPS = 1000
NOISE_SEED = 0x6E6F6973  # offsets a chunk's seed for its rate-aware noise generator (_Run.noise_gens)


def compiles(recipe: Recipe, device: torch.device, psnr_target: float | None) -> bool:
    """Whether a fit of ``recipe`` (its own steps: after :meth:`Recipe.for_frames`) torch.compiles its trunk."""
    mode = _compile_mode(os.environ.get("INVRCODEC_COMPILE", ""))
    if not recipe.compile or mode == "never":
        return False
    if mode == "always" or device.type != "cpu":
        return True
    return psnr_target is None and recipe.steps >= CPU_COMPILE_STEPS


@functools.lru_cache(maxsize=8)
def _compile_mode(text: str) -> str:
    """INVRCODEC_COMPILE's value: auto (also when unset), always or never; anything else is warned about once."""
    mode = text.strip().lower() or "auto"
    if mode not in ("auto", "always", "never"):
        log.warning("INVRCODEC_COMPILE=%r is not auto, always or never; using auto", text)
        return "auto"
    return mode


def _fit_batch(chunks: list[np.ndarray], starts: list[_Start], how: _Attempt,
               progress: Callable[[FitProgress], None] | None = None,
               ) -> tuple[dict[int, FitResult], dict[int, _Diverged]]:
    """One attempt at training the chunks together: results of the chunks that finished, and those that
    diverged, both by position in ``chunks``.

    Chunks of one size share a batch, trained by ``recipe.for_frames`` of their length; batches of different
    sizes (a video's short last chunk) step in lock-step, so on a GPU the short chunk's small kernels queue
    between the others' instead of costing a second pass over all the steps.
    """
    start = time.perf_counter()
    by_size: dict[tuple[int, ...], list[int]] = {}
    for j, chunk in enumerate(chunks):
        by_size.setdefault(chunk.shape, []).append(j)
    runs = [_Run([chunks[j] for j in js], js, [starts[j] for j in js], how, start) for js in by_size.values()]
    steps = max(run.recipe.steps for run in runs)
    for step in range(1, steps + 1):
        running = [run for run in runs if run.active]
        if not running:
            break
        for run in running:
            run.train(step)
        due = [run for run in running if step % run.how.poll == 0 or step == run.recipe.steps]
        polled = [run.poll(step) for run in due]
        shown = [p for psnrs, _ in polled for p in psnrs]
        if progress and shown and (any(checked for _, checked in polled) or step % 25 == 0):
            progress(FitProgress(step, steps, pooled_psnr(shown), time.perf_counter() - start))
        for run in due:
            if step == run.recipe.steps:
                run.finish(step)
    done: dict[int, FitResult] = {}
    diverged: dict[int, _Diverged] = {}
    for run in runs:
        done.update(run.done)
        diverged.update(run.diverged)
    return done, diverged


class _Run:
    """Chunks of one size training as one :class:`INVRBatch`, a step at a time.

    A chunk that finishes or diverges retires: its rows stay in the batch, held at their values and masked
    out of the loss, so the batch keeps its shape (no recompile); once half the rows are retired the batch is
    compacted to the live ones (at most log2(B) new shapes). ``done`` and ``diverged`` are keyed by the
    chunks' ``positions``.
    """

    def __init__(self, chunks: list[np.ndarray], positions: list[int], starts: list[_Start], how: _Attempt,
                 start: float) -> None:
        t_n, h, w, _ = chunks[0].shape
        rep, device, amp, lr_scale, rate, clock = how.rep, how.device, how.amp, how.lr_scale, how.rate, how.clock
        recipe = how.recipe.for_frames(t_n, rep.chunk_frames)
        self.sizes = (t_n, h, w)
        self.rep, self.recipe, self.device, self.psnr_target = rep, recipe, device, how.psnr_target
        self.lr_scale, self.start, self.clock = lr_scale, start, clock
        self.batch = _init_batch(rep, starts, device)
        self.gens = [torch.Generator(device="cpu").manual_seed(s.seed) for s in starts]
        # Rate-aware training's weight noise, each chunk from its own generator: never torch's global one,
        # whose state any other code in the process (a library, another thread) may advance between two runs
        # of the same command, and never drawn for the batch as a whole, which would tie a chunk's noise to
        # the chunks beside it.
        self.noise_gens = [torch.Generator(device="cpu").manual_seed(s.seed + NOISE_SEED) for s in starts]
        # (B,T,H,W,3), kept as 8-bit: a step converts only the pixels it draws, so a chunk's targets take a
        # byte per sample instead of five (2.2 GB less for 90 frames of 1080p)
        self.target_u8 = torch.from_numpy(np.ascontiguousarray(np.stack(chunks))).to(device)
        self.how = _how(device)
        native = self.how.amp_always or (recipe.cpu_bf16 and cpu_has_native_bf16())
        self.use_amp = native if amp is None else amp
        self.scaler = torch.amp.GradScaler(device.type,
                                           enabled=self.use_amp and self.how.amp_dtype == torch.float16)
        # Frozen tensors are left out of the optimiser and the L1 term. Eager steps skip their gradients too
        # (requires_grad off); a compiled graph guards on requires_grad, and flipping it per refinement stage
        # cost a recompile each, so compiled runs keep it on (_compile).
        self.trainable = [name not in starts[0].frozen for name in self.batch.names]
        _require_grads(self.batch, self.trainable)
        self.params = _trained(self.batch, self.trainable)
        # L1 of eq. 5 on the weights, or on their difference to an anchor (a P-chunk's reference); a key chunk
        # in a batch with P-chunks has the anchor zero.
        self.anchors: list[torch.Tensor] | None = None
        if any(s.anchor is not None for s in starts):
            names = [n for n, train in zip(self.batch.names, self.trainable) if train]
            self.anchors = [torch.stack([
                torch.from_numpy(np.asarray(s.anchor[n], dtype=np.float32)).reshape(p.shape[1:])
                if s.anchor is not None else torch.zeros(p.shape[1:]) for s in starts]).to(device)
                for n, p in zip(names, self.params)]
        self.compiled = self.compiling = False  # compiling: the next step compiles (see _compile)
        if compiles(recipe, device, how.psnr_target):
            self._compile()
        self.opt = Adam(self.params, lr=recipe.lr * lr_scale)
        # Rate-aware training: each trained tensor's coded step, and lambda on the loss's scale (a chunk's mean
        # squared error over its samples).
        self.rate = rate
        self.rate_steps = [] if rate is None else [
            rate.steps[n] for n, train in zip(self.batch.names, self.trainable) if train]
        self.rate_lam = 0.0 if rate is None else rate.lam / (t_n * h * w * 3)
        self.gamma_all: torch.Tensor | None = None
        if recipe.arithmetic == "reference" and recipe.batch == 0:
            # The paper memoises the encoded coordinates of the chunk (sec. 3.1.2); chunks of one size share
            # them.
            yy, xx = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                    indexing="ij")
            yy, xx = yy.reshape(-1), xx.reshape(-1)
            self.gamma_all = torch.stack([
                full_encoding(torch.full((h * w,), t, device=device), yy, xx, self.sizes, rep)
                for t in range(t_n)])
        # Everything below is by row of the batch; compaction drops the retired rows from all of it.
        self.positions = positions
        self.live = [True] * len(chunks)
        self.retired: torch.Tensor | None = None  # indices of the retired rows, put back after every step
        self.held: list[torch.Tensor] | None = None  # by tensor: retired rows' values (live rows unused)
        self.live_mask = torch.ones(len(chunks), device=device)
        self.checked = [math.nan] * len(chunks)  # each row's last full-chunk PSNR
        # The collapse guard (COLLAPSE_MARGIN_DB): each chunk's flat-picture PSNR, its best accepted check and
        # the state there.
        self._floor: list[float | None] = [None] * len(chunks)  # computed once judged (_floor_of)
        self.watch_from = watch_from(recipe)
        self.best: list[FitResult | None] = [None] * len(chunks)
        self.falls = [FallWatch() for _ in chunks]  # the fall rule (FALL_STEPS)
        self.est_mse: torch.Tensor | None = None
        self.last_mse: torch.Tensor | None = None
        self.lr = recipe.lr * lr_scale
        self.done: dict[int, FitResult] = {}
        self.diverged: dict[int, _Diverged] = {}

    @property
    def active(self) -> bool:
        return any(self.live)

    def _compile(self) -> None:
        """torch.compile the batch's training trunk; the next step compiles it (and the first after a
        compaction). One network: shapes never change, so no dynamic shapes. A batch's chunk count shrinks as
        chunks finish; the default then recompiles once with that dimension dynamic."""
        dynamic = False if self.batch.count == 1 else None
        _require_grads(self.batch, None)
        with self.clock.phase("compile"):
            self.batch.train_trunk = compile_fn(self.batch.train_trunk, dynamic,  # type: ignore[method-assign]
                                                cpu=self.device.type == "cpu")
        self.compiled = self.compiling = True

    def train(self, step: int) -> None:
        """One optimiser step of every row (retired rows are put back after it)."""
        if self.compiling:
            self.compiling = False
            with self.clock.phase("compile"):
                self._train(step)
        else:
            self._train(step)

    def _train(self, step: int) -> None:
        recipe, device = self.recipe, self.device
        self.lr = _lr_at(step - 1, recipe) * self.lr_scale
        for group in self.opt.param_groups:
            group["lr"] = self.lr
        rated = self.rate is not None and step > self.rate.start * recipe.steps
        noise = self._add_noise() if rated and self.rate.noise else []  # type: ignore[union-attr]
        with torch.autocast(device.type, dtype=self.how.amp_dtype, enabled=self.use_amp):
            pred, truth = _step_batch(self.batch, self.target_u8, self.sizes, recipe, self.gens, self.gamma_all,
                                      self.rep, device)
            mse = ((pred.float() - truth) ** 2).flatten(1).mean(dim=1)  # (B,): each chunk's own MSE
            objective = mse + self.rate_lam * self._bits() if rated else mse
            loss = (objective * self.live_mask).sum()
        self.batch.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if recipe.l1:
            self.scaler.unscale_(self.opt)  # (does nothing without a scaler)
            self._add_l1(recipe.l1)
        if noise:  # the gradient was taken at the noisy weights; the step moves the clean ones
            with torch.no_grad():
                for p, n in zip(self.params, noise):
                    p.sub_(n)
        self.scaler.step(self.opt)
        self.scaler.update()
        self._put_back()
        m = mse.detach().float()
        self.last_mse = m
        self.est_mse = m if self.est_mse is None else 0.9 * self.est_mse + 0.1 * m

    @torch.no_grad()
    def _add_noise(self) -> list[torch.Tensor]:
        """Uniform noise of each trained tensor's quantiser step (times the trellis factor) added in place;
        returns it, to be taken off again after the backward pass."""
        assert self.rate is not None
        draws = [[torch.rand(p.shape[1:], generator=g) for p in self.params] for g in self.noise_gens]
        noise = [(torch.stack(rows).to(p.device) - 0.5) * (self.rate.kappa * step)
                 for p, step, rows in zip(self.params, self.rate_steps, zip(*draws))]
        for p, n in zip(self.params, noise):
            p.add_(n)
        return noise

    def _bits(self) -> torch.Tensor:
        """Each chunk's estimated coded bits (of its difference to the anchor, if any), shape (B,)."""
        assert self.rate is not None
        anchors = self.anchors if self.anchors is not None else [None] * len(self.params)
        return sum(tensor_bits(p if a is None else p - a, step, self.rate.kappa, dims=1)  # type: ignore[return-value]
                   for p, a, step in zip(self.params, anchors, self.rate_steps))

    @torch.no_grad()
    def _add_l1(self, lam: float) -> None:
        """Eq. 5's L1 term by its gradient: ``lam * sign`` of each trained tensor (of its difference to the
        anchor, if any) added to the loss's gradients, in two operations, where autograd over the summed
        magnitudes took some fifty small ones a step for the same numbers."""
        diffs = self.params if self.anchors is None else torch._foreach_sub(self.params, self.anchors)
        torch._foreach_add_([p.grad for p in self.params], torch._foreach_sign(diffs), alpha=lam)

    def poll(self, step: int) -> tuple[list[float], bool]:
        """Read the losses back, check PSNRs where due, retire finished and diverged chunks; return the
        PSNRs (measured or estimated) of the rows that were live, and whether any was measured."""
        assert self.last_mse is not None and self.est_mse is not None
        recipe, psnr_target = self.recipe, self.psnr_target
        mse_now, est_now = self.last_mse.cpu().tolist(), self.est_mse.cpu().tolist()
        est_psnr = [psnr_from_mse(e / 4.0) for e in est_now]
        rows = range(len(self.live))
        watched = step >= self.watch_from
        rated = self.rate is not None and step > self.rate.start * recipe.steps
        leaving: dict[int, _Diverged | None] = {}
        for row in rows:
            if self.live[row] and not math.isfinite(mse_now[row]):
                leaving[row] = _Diverged(step, f"loss {mse_now[row]}")
            elif self.live[row] and watched and est_psnr[row] < self._floor_of(row):
                leaving[row] = self._collapsed(row, step, f"estimated {est_psnr[row]:.2f} dB, {self._flat(row)}")
            elif self.live[row] and watched and not rated and self.falls[row].fallen(step, est_psnr[row]):
                leaving[row] = self._collapsed(row, step, f"estimated {est_psnr[row]:.2f} dB for {FALL_STEPS} "
                                                          f"steps, fallen from {self.falls[row].peak:.2f} dB")
        scheduled = recipe.eval_every > 0 and (step % recipe.eval_every == 0 or step == recipe.steps)
        to_check = [row for row in rows if self.live[row] and row not in leaving and (
            scheduled or (psnr_target is not None and est_psnr[row] >= psnr_target))]
        if to_check:
            # In the training's precision: bfloat16 moved these PSNRs by under 0.01 dB and is 1.5x faster.
            with self.clock.phase("check"), torch.autocast(
                    self.device.type, dtype=self.how.amp_dtype, enabled=self.use_amp):
                rendered = render_chunks(self.batch, self.sizes, to_check, self.how.check_pixels)
            for row, frames in zip(to_check, rendered):
                psnr = self.checked[row] = rgb_psnr(frames, self.target_u8[row])
                log.debug("step %d: chunk %d at %.2f dB (estimated %.2f dB)", step, self.positions[row],
                          psnr, est_psnr[row])
                best = self.best[row]
                if watched and psnr < self._floor_of(row):
                    leaving[row] = self._collapsed(row, step, f"checked {psnr:.2f} dB, {self._flat(row)}")
                elif best is not None and psnr < best.psnr - COLLAPSE_DROP_DB:
                    leaving[row] = self._collapsed(row, step, f"fell from {best.psnr:.2f} dB at step {best.steps} "
                                                              f"to {psnr:.2f} dB")
                else:
                    if watched and (best is None or psnr > best.psnr):
                        self.best[row] = _result(self.batch, row, psnr, step, self.start)
                    if psnr_target is not None and psnr >= psnr_target:
                        leaving[row] = None
        shown = [self.checked[row] if row in to_check else est_psnr[row] for row in rows if self.live[row]]
        if leaving:
            self._retire(leaving, step)
        return shown, bool(to_check)

    def _collapsed(self, row: int, step: int, why: str) -> _Diverged:
        return _Diverged(step, f"chunk {self.positions[row]}: {why}", "collapsed", self.best[row])

    def _flat(self, row: int) -> str:
        return f"not above the guard's floor of {self._floor_of(row):.2f} dB (a flat picture's, plus a margin)"

    def _floor_of(self, row: int) -> float:
        """The row's flat-picture PSNR plus the margin, computed when the guard first judges it: a fit shorter
        than its watch (refinement, a short --steps) never pays for a pass over the chunk's frames."""
        floor = self._floor[row]
        if floor is None:
            floor = self._floor[row] = collapse_floor(self.target_u8[row].cpu().numpy())
        return floor

    def _retire(self, leaving: dict[int, _Diverged | None], step: int) -> None:
        if self.held is None:
            self.held = [t.detach().clone() for t in self.batch.tensors]
        for row, why in leaving.items():
            self.live[row] = False
            if why is None:
                result = _result(self.batch, row, self.checked[row], step, self.start)
                self.done[self.positions[row]] = result
            else:
                self.diverged[self.positions[row]] = why
            with torch.no_grad():  # held at their values; a diverged chunk at zeros, which stay finite
                for t, h in zip(self.batch.tensors, self.held):
                    h[row] = t[row] if why is None else 0.0
        if not self.active:
            return
        keep = [row for row, alive in enumerate(self.live) if alive]
        if 2 * len(keep) > len(self.live):
            self.live_mask = torch.tensor(self.live, dtype=torch.float32, device=self.device)
            self.retired = torch.tensor([row for row, alive in enumerate(self.live) if not alive],
                                        device=self.device)
            self._put_back()
            return
        idx = torch.tensor(keep, device=self.device)
        self.batch, self.opt = _compact(self.batch, self.opt, keep, self.trainable, self.lr)
        if self.compiled:
            self._compile()
        else:
            _require_grads(self.batch, self.trainable)
        self.params = _trained(self.batch, self.trainable)
        if self.anchors is not None:
            self.anchors = [a.index_select(0, idx) for a in self.anchors]
        self.target_u8 = self.target_u8.index_select(0, idx)
        assert self.est_mse is not None
        self.est_mse = self.est_mse.index_select(0, idx)
        self.gens = [self.gens[row] for row in keep]
        self.noise_gens = [self.noise_gens[row] for row in keep]
        self.positions = [self.positions[row] for row in keep]
        self.checked = [self.checked[row] for row in keep]
        self._floor = [self._floor[row] for row in keep]
        self.best = [self.best[row] for row in keep]
        self.falls = [self.falls[row] for row in keep]
        self.live, self.retired, self.held = [True] * len(keep), None, None
        self.live_mask = torch.ones(len(keep), device=self.device)

    @torch.no_grad()
    def _put_back(self) -> None:
        """Retired rows back to their held values (the optimiser moved them)."""
        if self.retired is None or self.held is None:
            return
        for t, h in zip(self.batch.tensors, self.held):
            t.index_copy_(0, self.retired, h.index_select(0, self.retired))

    def finish(self, step: int) -> None:
        """Results of the rows still live after the last step (which retires them)."""
        for row, alive in enumerate(self.live):
            if not alive:
                continue
            result = _result(self.batch, row, self.checked[row], step, self.start)
            if not all(np.isfinite(v).all() for v in result.state.values()):
                self.diverged[self.positions[row]] = _Diverged(step, "non-finite weights")
            else:
                self.done[self.positions[row]] = result
        self.live = [False] * len(self.live)


def _result(batch: INVRBatch, row: int, psnr: float, step: int, start: float) -> FitResult:
    return FitResult(batch.state(row), psnr, step, time.perf_counter() - start, 0)


def _step_batch(batch: INVRBatch, target: torch.Tensor, sizes: tuple[int, int, int], recipe: Recipe,
                gens: list[torch.Generator], gamma_all: torch.Tensor | None, rep: Representation,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and targets (in [-1, 1]) of one training step, each chunk's pixels drawn from its own
    generator; ``target`` holds the chunks' 8-bit frames."""
    t_n, h, w = sizes
    b = torch.arange(len(gens), device=device)
    if recipe.batch == 0:  # one whole random frame per chunk
        t = torch.cat([torch.randint(0, t_n, (1,), generator=g) for g in gens]).to(device)
        if gamma_all is not None:
            pred = batch.forward_reference(gamma_all[t]).reshape(len(gens), h, w, 3)
        else:
            pred = batch.forward_frames(t[:, None], sizes)[:, 0]
        return pred, from_rgb8(target[b, t])
    if recipe.arithmetic == "tables":
        grids = [_grid_batch(sizes, recipe, g, device) for g in gens]
        ti, yi, xi = (torch.stack(parts) for parts in zip(*grids))
        pred = batch.forward_grid(ti, yi, xi, sizes)
        # One gather by flat pixel index: two thirds of the time of indexing by four broadcast index tensors
        flat = ((b[:, None, None, None] * t_n + ti[:, :, None, None]) * h + yi[:, :, :, None]) * w + xi[:, :, None, :]
        truth = target.reshape(-1, 3).index_select(0, flat.reshape(-1)).reshape(*flat.shape, 3)
        return pred, from_rgb8(truth)
    flat = torch.stack([torch.randint(0, t_n * h * w, (recipe.batch,), generator=g) for g in gens]).to(device)
    ti, rem = flat // (h * w), flat % (h * w)
    yi, xi = rem // w, rem % w
    gamma = full_encoding(ti.reshape(-1), yi.reshape(-1), xi.reshape(-1), sizes, rep)
    gamma = gamma.reshape(len(gens), -1, rep.in_features)
    return batch.forward_reference(gamma), from_rgb8(target.reshape(len(gens), -1, 3)[b[:, None], flat])

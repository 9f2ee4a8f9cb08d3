"""Fitting one chunk: train an :class:`INVRNet` on T frames (paper sec. 3.1.2, "Model Training").

Loss is MSE + lambda * L1(weights) (eq. 5). Two recipes share this loop: the paper's (one whole random frame
per step, constant learning rate, textbook forward pass) and ours (random pixel batches from the whole chunk,
per-axis first-layer tables, cosine-decayed learning rate). Mixed precision on CUDA, as the paper.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from invrcodec.errors import InvrEncodeError
from invrcodec.model import INVRNet, from_rgb8, full_encoding, to_rgb8
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
    eval_every: int = 250  # full-chunk PSNR check interval (also when the running estimate meets the target)
    warmup: int = 0  # linear learning-rate warm-up steps (at most a tenth of the steps)
    grid_frames: int = 4  # "tables" batches are k frames x m random rows x n random columns, k*m*n ~= batch
    compile: bool = False  # torch.compile the trunk (fuses the sine with its scaling; pays off over many steps)
    # Quantisation-aware refinement (see invrcodec.encoder): after training, the tensors are coded in stages
    # and, after each stage but the last, the tensors not coded yet are trained for refine * steps steps (from
    # refine_lr, cosine-decayed) so that they absorb the quantisation error of those already coded. 0 = off.
    refine: float = 0.0
    refine_lr: float = 1e-4
    # Mixed precision on the CPU (bfloat16 autocast; the sine stays float32) where the CPU computes bfloat16
    # natively: 1.6-1.9x faster per step; after the 800-step `fast` fit 34.34 / 35.80 dB against float32's
    # 34.55 / 35.32 (bigbuckbunny / carphone). CUDA always uses float16 mixed precision, as the paper.
    cpu_bf16: bool = False

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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere it is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of an MSE measured on [0, 1] values."""
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def rgb_psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """PSNR (dB) between two uint8 RGB arrays of equal shape: the one quality metric of invrcodec."""
    ta = torch.as_tensor(a).to(torch.float64)
    tb = torch.as_tensor(b).to(torch.float64)
    return psnr_from_mse(float(((ta - tb) ** 2).mean()) / (255.0**2))


@torch.no_grad()
def render_chunk(net: INVRNet, sizes: tuple[int, int, int], frame_batch: int = 1) -> torch.Tensor:
    """All frames of a chunk as uint8 ``(T, H, W, 3)`` using the per-axis tables."""
    tables = net.axis_tables(sizes)
    dev = tables[0].device
    out = []
    for t0 in range(0, sizes[0], frame_batch):
        idx = torch.arange(t0, min(sizes[0], t0 + frame_batch), device=dev)
        out.append(to_rgb8(net.forward_frames(idx, sizes, tables)))
    return torch.cat(out)


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
              frozen: dict[str, np.ndarray] | None = None) -> FitResult:
    """Train a network on ``frames`` (uint8 ``(T, H, W, 3)``), retrying with a lower rate if it diverges.

    ``init`` starts from given weights instead of the SIREN initialisation; ``frozen`` fixes some tensors at
    given values (they are not trained, and the result holds exactly those values).
    """
    lr_scale = 1.0
    for attempt in range(max_retries + 1):
        try:
            result = _fit_once(frames, rep, recipe, device, seed + 7919 * attempt, psnr_target, amp,
                               progress, lr_scale, init or {}, frozen or {})
            result.retries = attempt
            return result
        except _Diverged as exc:
            log.warning("training diverged at step %d (%s); retrying at half the learning rate", exc.step, exc)
            lr_scale *= 0.5
    raise InvrEncodeError(f"training diverged {max_retries + 1} times; chunk not written")


class _Diverged(Exception):
    def __init__(self, step: int, why: str) -> None:
        super().__init__(why)
        self.step = step


def _fit_once(frames: np.ndarray, rep: Representation, recipe: Recipe, device: torch.device, seed: int,
              psnr_target: float | None, amp: bool | None, progress: Callable[[FitProgress], None] | None,
              lr_scale: float, init: dict[str, np.ndarray], frozen: dict[str, np.ndarray]) -> FitResult:
    start = time.perf_counter()
    t_n, h, w, _ = frames.shape
    sizes = (t_n, h, w)
    torch.manual_seed(seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    net = INVRNet(rep).to(device)
    with torch.no_grad():
        for name, p in net.named_parameters():
            value = frozen.get(name, init.get(name))
            if value is not None:
                p.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)).reshape(p.shape))
            p.requires_grad_(name not in frozen)
    target_u8 = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    target = from_rgb8(target_u8)  # (T, H, W, 3) in [-1, 1]
    flat_target = target.reshape(-1, 3)
    use_amp = (device.type == "cuda" or (recipe.cpu_bf16 and cpu_has_native_bf16())) if amp is None else amp
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
    fused = device.type in ("cuda", "cpu")
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=recipe.lr * lr_scale, fused=fused)
    if recipe.compile:
        net.trunk = torch.compile(net.trunk, dynamic=False)  # type: ignore[method-assign]

    gamma_all: torch.Tensor | None = None
    if recipe.arithmetic == "reference" and recipe.batch == 0:
        # The paper memoises the encoded coordinates of the chunk (sec. 3.1.2).
        yy, xx = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        gamma_all = torch.stack([
            full_encoding(torch.full((h * w,), t, device=device), yy.reshape(-1), xx.reshape(-1), sizes, rep)
            for t in range(t_n)])

    best_psnr = -1.0
    est_mse = None
    step = 0
    for step in range(1, recipe.steps + 1):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step - 1, recipe) * lr_scale
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            if recipe.batch == 0:
                t = int(torch.randint(0, t_n, (1,), generator=gen))
                if gamma_all is not None:
                    pred = net.forward_reference(gamma_all[t]).reshape(h, w, 3)
                else:
                    pred = net.forward_frames(torch.tensor([t], device=device), sizes)[0]
                truth = target[t]
            elif recipe.arithmetic == "tables":
                ti, yi, xi = _grid_batch(sizes, recipe, gen, device)
                pred = net.forward_grid(ti, yi, xi, sizes)
                truth = target[ti[:, None, None], yi[:, :, None], xi[:, None, :]]
            else:
                flat = torch.randint(0, t_n * h * w, (recipe.batch,), generator=gen).to(device)
                ti, rem = flat // (h * w), flat % (h * w)
                yi, xi = rem // w, rem % w
                pred = net.forward_reference(full_encoding(ti, yi, xi, sizes, rep))
                truth = flat_target[flat]
            mse = torch.mean((pred.float() - truth) ** 2)
            loss = mse + recipe.l1 * sum(p.abs().sum() for p in params)
        if not torch.isfinite(loss):
            raise _Diverged(step, f"loss {float(loss.detach())}")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

        m = float(mse.detach())
        est_mse = m if est_mse is None else 0.9 * est_mse + 0.1 * m
        est_psnr = psnr_from_mse(est_mse / 4.0)
        check = step % recipe.eval_every == 0 or step == recipe.steps
        if psnr_target is not None and est_psnr >= psnr_target:
            check = True
        if check:
            best_psnr = rgb_psnr(render_chunk(net, sizes), target_u8)
            if progress:
                progress(FitProgress(step, recipe.steps, best_psnr, time.perf_counter() - start))
            if psnr_target is not None and best_psnr >= psnr_target:
                break
            if best_psnr < 3.0 and step >= 2 * recipe.eval_every:
                raise _Diverged(step, f"PSNR {best_psnr:.1f} dB")
        elif progress and step % 25 == 0:
            progress(FitProgress(step, recipe.steps, est_psnr, time.perf_counter() - start))

    state = {name: p.detach().float().cpu().numpy().copy() for name, p in net.named_parameters()}
    if not all(np.isfinite(v).all() for v in state.values()):
        raise _Diverged(step, "non-finite weights")
    return FitResult(state, best_psnr, step, time.perf_counter() - start, 0)

"""What the whole command's speed rests on: the phase clock behind ``invr-enc --benchmark``, the compiled-kernel
cache the command keeps, and the step count of a chunk shorter than the representation's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST_ENC, run

from invrcodec.clock import ORDER, PhaseClock, process_age
from invrcodec.net.compiling import keep_kernels
from invrcodec.codec.presets import PRESETS


def test_a_phase_inside_another_is_counted_once() -> None:
    clock = PhaseClock()
    with clock.phase("train"):
        time.sleep(0.02)
        with clock.phase("check"):
            time.sleep(0.05)
    assert clock.seconds["check"] >= 0.05
    assert 0.02 <= clock.seconds["train"] < 0.05  # the check's time is not the training's
    def slow() -> object:
        for i in (1, 2, 3):
            time.sleep(0.01)
            yield i

    items = list(clock.timed(slow(), "read"))
    assert items == [1, 2, 3] and clock.seconds["read"] >= 0.03
    assert clock.report().startswith("read ")  # reported in ORDER: read before train
    assert ORDER.index("read") < ORDER.index("train")
    age = process_age()
    assert age is None or 0 < age < 24 * 3600


def test_keep_kernels_uses_the_user_cache_unless_told(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    keep_kernels()
    assert Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]) == tmp_path / "cache" / "invrcodec" / "inductor"
    assert (tmp_path / "cache" / "invrcodec" / "inductor").is_dir()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    keep_kernels()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # a file: the folder cannot be made
    keep_kernels()
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ


def test_a_short_chunk_trains_the_presets_rule_and_an_explicit_step_count_as_given() -> None:
    fast = PRESETS["fast"]
    assert fast.for_frames(90, 90).steps == fast.steps
    assert fast.for_frames(60, 90).steps == round(fast.steps * 2 / 3)  # in proportion down to half the chunk
    assert fast.for_frames(45, 90).steps == fast.steps // 2
    assert fast.for_frames(45, 90).eval_every == fast.eval_every // 2
    assert fast.for_frames(15, 90).steps == fast.steps // 4  # 45 frames get twice a 15-frame network's steps
    assert PRESETS["paper"].for_frames(5, 15).steps == PRESETS["paper"].steps  # the paper's recipe is fixed
    from invrcodec.codec.encoder import EncoderConfig

    given = EncoderConfig.from_preset("fast", steps=100).recipe
    assert given.for_frames(3, 45).steps == 100


def test_benchmark_prints_where_the_time_went(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    proc = run(["invr-enc", *FAST_ENC, "--benchmark", "--frames", "2", tiny_y4m, tmp_path / "b.invr"])
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stderr.decode().splitlines() if "bench:" in line)
    phases = dict(re.findall(r"([a-z-]+) ([0-9.]+) s", line.split(";")[0]))
    assert {"start-up", "train"} <= set(phases), line  # phases under 5 ms are left out
    assert "utime=" in line


def test_keep_freed_memory_sets_glibcs_thresholds_and_training_still_runs() -> None:
    import platform

    import numpy as np
    import torch

    from invrcodec.net.fit import Recipe, fit_chunk
    from invrcodec.hostmem import keep_freed_memory
    from invrcodec.types import Representation

    ok = keep_freed_memory()
    assert ok == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    frames = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    rep = Representation(hidden=16, layers=2, enc_dims=(2, 2, 1), chunk_frames=2)
    res = fit_chunk(frames, rep, Recipe(steps=5, lr=1e-3, batch=64), device=torch.device("cpu"))
    assert res.steps == 5


def test_a_psnr_target_stops_training_short_of_it_by_what_refinement_adds() -> None:
    from dataclasses import replace

    from invrcodec.codec.encoder import Encoder, EncoderConfig
    from invrcodec.types import StreamInfo

    stream = StreamInfo(width=16, height=16, frame_count=4)
    cfg = EncoderConfig.from_preset("fast", psnr=30.0, device="cpu")
    enc = Encoder(stream, cfg)
    assert cfg.recipe.refine > 0 and 0 < cfg.recipe.refine_gain < 2
    assert enc.psnr_stop(cfg.recipe) == pytest.approx(30.0 - cfg.recipe.refine_gain)
    assert enc.psnr_stop(replace(cfg.recipe, refine=0.0)) == 30.0  # nothing after training to count on
    assert Encoder(stream, EncoderConfig.from_preset("fast", device="cpu")).psnr_stop(cfg.recipe) is None
    medium = EncoderConfig.from_preset("medium", psnr=30.0, device="cpu")  # not measured: the target itself
    assert Encoder(stream, medium).psnr_stop(medium.recipe) == 30.0


def test_the_second_command_compiles_nothing_the_first_did_not(bin_dir: Path, tiny_y4m: Path,
                                                                tmp_path: Path) -> None:
    """The instruction-set setting is part of inductor's cache key: the first process must set it as every
    later one does, or the second command misses the kernels the first kept (it did: +1.2 s)."""
    cache = tmp_path / "inductor"
    opts = [*FAST_ENC, "--preset", "fast", "--steps", "4", "--frames", "2", "-y", tiny_y4m, tmp_path / "c.invr"]

    def graphs() -> set[str]:
        return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and "locks" not in p.parts}

    env = {"TORCHINDUCTOR_CACHE_DIR": str(cache), "INVRCODEC_COMPILE": "always"}  # a 4-step fit compiles
    first = run(["invr-enc", *opts], env=env)
    assert first.returncode == 0, first.stderr
    kept = graphs()
    assert any(p.startswith("fxgraph") for p in kept)
    second = run(["invr-enc", *opts], env=env)
    assert second.returncode == 0, second.stderr
    assert graphs() == kept


def test_a_short_cpu_encode_never_imports_the_compiler(tmp_path: Path) -> None:
    """torch.compile costs a CPU process about 2 s (dynamo's and inductor's imports, tracing) and torch.optim
    about 1 s (it imports dynamo): a fit of few steps, or one that stops at a PSNR target, trains eagerly with
    invrcodec's own Adam and pays neither (fit.compiles)."""
    script = (
        "import sys, dataclasses, numpy as np, torch\n"
        "from invrcodec.net import fit\n"
        "from invrcodec.codec.presets import PRESETS\n"
        "from invrcodec.types import Representation\n"
        "frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)\n"
        "rep = Representation(hidden=16, layers=2, enc_dims=(4, 4, 2), chunk_frames=2)\n"
        "recipe = dataclasses.replace(PRESETS['fast'], steps=6, batch=64, eval_every=3)\n"
        "fit.fit_chunk(frames, rep, recipe, device=torch.device('cpu'))\n"
        "print('torch._dynamo' in sys.modules, 'torch._inductor' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "INVRCODEC_COMPILE"}
    eager = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert eager.returncode == 0, eager.stderr
    assert eager.stdout.split() == ["False", "False"]
    env["INVRCODEC_COMPILE"] = "always"
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "inductor")
    compiled = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert compiled.returncode == 0, compiled.stderr
    assert compiled.stdout.split() == ["True", "True"]  # the same fit, compiled when told


def test_whether_a_fit_compiles_depends_on_the_fit_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled and eager steps round differently: the choice is the fit's (its steps, its PSNR target, the
    device), so a resumed encode or a Ray worker compiles exactly the chunks an uninterrupted encode does."""
    from dataclasses import replace as dc_replace

    from invrcodec.net import fit

    monkeypatch.delenv("INVRCODEC_COMPILE", raising=False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    long = dc_replace(PRESETS["fast"], steps=fit.CPU_COMPILE_STEPS)
    short = dc_replace(long, steps=fit.CPU_COMPILE_STEPS - 1)
    assert fit.compiles(long, cpu, None)
    assert not fit.compiles(short, cpu, None)
    assert not fit.compiles(long, cpu, 30.0)  # stops at a target: a few hundred steps
    assert fit.compiles(short, cuda, 30.0)  # CUDA compiles what the recipe says
    assert not fit.compiles(dc_replace(long, compile=False), cuda, None)
    fast = PRESETS["fast"]
    assert fit.compiles(fast, cpu, None)  # a 90-frame chunk, and its P-chunk (35% of the steps)
    assert fit.compiles(fast.for_p_chunk(), cpu, None)
    assert not fit.compiles(fast.for_frames(45, 90).for_p_chunk(), cpu, None)  # a 45-frame P-chunk: short
    assert not fit.compiles(dc_replace(fast, steps=round(fast.refine * fast.steps)), cpu, None)  # a refinement stage
    monkeypatch.setenv("INVRCODEC_COMPILE", "always")
    assert fit.compiles(short, cpu, 30.0)
    monkeypatch.setenv("INVRCODEC_COMPILE", "never")
    assert not fit.compiles(long, cuda, None)
    monkeypatch.setenv("INVRCODEC_COMPILE", "sometimes")
    assert fit.compiles(long, cpu, None) and not fit.compiles(short, cpu, None)  # warned about: auto

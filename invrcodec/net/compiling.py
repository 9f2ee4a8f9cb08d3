"""torch.compile for the training loop, without every process paying for what the machine has already proved.

:func:`keep_kernels` (called by ``invr-enc``) keeps inductor's compiled kernels in the user's cache
directory rather than in ``/tmp``, which is emptied at boot: a first compile of the training step costs
about 16 s on a two-core CPU, every later one about a second.

Before its first CPU kernel, inductor builds a probe library for each vector instruction set the CPU reports
and loads it in a child Python (``valid_vec_isa_list``): about 1.2 s of compiler and interpreter start-ups in
every process, though the answer never changes on one machine. :func:`compile_fn` on the CPU settles it once:
it probes (inductor's own probe, in this process) where no answer is remembered, writes the answer to
inductor's own cache directory when every instruction set passed (so clearing that cache clears it), keyed by
torch's version, the interpreter, the compiler setting and the instruction sets, and tells inductor
(``config.cpp.vec_isa_ok``). That setting is part of the compiled graphs' cache key, so it is set the same
way in the first process as in every later one: otherwise the second command would miss the cache the first
filled. Where anything is not as expected (another platform, another torch whose internals moved, a probe
that failed) inductor probes as it always did.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def keep_kernels() -> None:
    """Point inductor's cache at ``$XDG_CACHE_HOME/invrcodec/inductor`` (``~/.cache/...``), unless
    ``TORCHINDUCTOR_CACHE_DIR`` says where, or that folder cannot be made."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "invrcodec" / "inductor"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if os.access(folder, os.W_OK):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)


def compile_fn(fn: Callable[..., Any], dynamic: bool | None = None, cpu: bool = True) -> Callable[..., Any]:
    """``torch.compile(fn)``; for the CPU (``cpu``), with the instruction-set probes settled first."""
    if cpu:
        _settle_probe()
    return torch.compile(fn, dynamic=dynamic)


def _settle_probe() -> None:
    """Tell inductor that every instruction set the CPU reports works: remembered, or probed now and
    remembered (nothing is set when one failed: inductor then probes and skips it, as always)."""
    try:
        from torch._inductor import config

        if config.cpp.vec_isa_ok is not None or (path := _memo_path()) is None:
            return
        if not path.exists():
            from torch._inductor.cpu_vec_isa import valid_vec_isa_list

            if [str(isa) for isa in valid_vec_isa_list()] != _reported():
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("every instruction set passed\n")
        config.cpp.vec_isa_ok = True
    except (ImportError, AttributeError, OSError, TypeError, ValueError) as exc:  # a cache: never fail for it
        log.debug("instruction-set probes not settled: %s", exc)


def _reported() -> list[str]:
    """The instruction sets inductor would probe on this CPU, in its order."""
    from torch._inductor.cpu_vec_isa import supported_vec_isa_list, x86_isa_checker

    flags = x86_isa_checker()
    return [str(isa) for isa in supported_vec_isa_list if all(f in flags for f in str(isa).split())]


def _memo_path() -> Path | None:
    import platform

    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    from torch._inductor import config
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    key = "\n".join([torch.__version__, sys.executable, str(config.cpp.cxx), os.environ.get("CXX", ""),
                     ",".join(_reported())])
    return Path(cache_dir()) / "invrcodec" / f"vec-isa-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


__all__ = ["compile_fn", "keep_kernels"]

"""Where the networks run: a device name from the command line or the API turned into a checked torch device.

One definition for the encoder, the decoder and the tools (``--device auto|cpu|cuda[:N]``).
"""

from __future__ import annotations

import torch

from invrcodec.errors import InvrConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU; ``cuda[:N]`` is checked."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InvrConfigError(f"unknown device {name!r} (use auto, cpu or cuda[:N])") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvrConfigError(f"device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvrConfigError(f"device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise InvrConfigError(f"unsupported device {name!r} (use auto, cpu or cuda[:N])")
    return dev

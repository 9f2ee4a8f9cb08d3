"""The README's Python example runs as written (on a small synthetic clip, with a tiny network)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from conftest import ROOT, synthetic_frames, write_clip


def test_readme_python_example_runs(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 1, "the README has one Python example"
    code = blocks[0]
    # The same code, made CI-sized: only the preset's arguments change.
    small = 'EncoderConfig.from_preset("ultrafast", device="cpu", steps=20, hidden=16, layers=1, enc_dims=(4, 4, 2))'
    assert 'EncoderConfig.from_preset("fast", device="auto")' in code
    code = code.replace('EncoderConfig.from_preset("fast", device="auto")', small).replace("...", "seen.append(rgb)")
    write_clip(tmp_path / "in.mp4", synthetic_frames(24, 16, 30), audio=True)
    monkeypatch.chdir(tmp_path)
    seen: list[np.ndarray] = []
    exec(compile(code, "README.md", "exec"), {"seen": seen})  # noqa: S102 - the documented example itself
    assert os.path.getsize("out.invr") > 0
    assert len(seen) == 5 and seen[0].shape == (16, 24, 3) and seen[0].dtype == np.uint8
    import invrcodec

    with invrcodec.open("out.invr") as f:  # the clip's AAC track went in with the frames
        assert f.audio is not None and f.audio.codec == "aac" and len(list(f.demux_audio())) > 20

"""What the tools share, by job; the tools (``tools/*.py``) are thin command lines over it.

Shared by several tools: :mod:`~evalkit.clips` (video files and synthetic clips as RGB frames),
:mod:`~evalkit.invr` (INVR through real .invr files, byte for byte the encoder's), :mod:`~evalkit.bd`
(Bjontegaard deltas) and :mod:`~evalkit.report` (statistics, the machine, JSON report heads, a tool's exit).
The jobs of the larger tools: tools/rd.py's baselines (:mod:`~evalkit.baselines`), points and BD tables
(:mod:`~evalkit.rdpoints`), outputs (:mod:`~evalkit.rdreport`) and plots (:mod:`~evalkit.rdplots`);
tools/bench.py's time to target (:mod:`~evalkit.benchfit`), whole command (:mod:`~evalkit.benchcommand`),
decoding (:mod:`~evalkit.benchdecode`) and memory (:mod:`~evalkit.benchmemory`); tools/fuzz.py's crafted
files (:mod:`~evalkit.crafted`).

It stands on invrcodec (any layer: the tools measure its insides) and the tools' libraries (PyAV, SciPy,
matplotlib); a module here imports its siblings below it, never a tool. A tool finds this package by putting
tools/ on ``sys.path``.
"""

"""Crafted-file fuzzing: mutate fields of valid .invr files, recompute every CRC, judge each answer.

    nice -n 10 python tools/fuzz.py --cases 100000 --out out/fuzz.json     # the long run (docs/results.md)
    python tools/fuzz.py --cases 200 --cli-every 1                          # a quick look

A CRC only guards against accidents; whoever writes a file can write a correct one. Each case takes one of the
committed sample files (``samples/*.invr``), parses it with the format's own construct Structs, changes one to
three things (a header, coder, chunk, tensor, index or trailer field set to an extreme or random value; in a
file with audio, an audio stream, audio packet or audio index field too; tensors, chunks, audio records or
audio packets dropped, repeated, swapped, moved or filled with random bytes; extension records added), and
writes the file back with the header CRC, the record CRCs, the index and the audio index (offsets, sizes,
CRCs, spans) recomputed, so that the reader must judge the *values*. The case is then read by the Python API
(``invrcodec.open`` + ``decode`` with its audio, from a seekable file or a pipe) and, every ``--cli-every``
cases, by ``invr-probe`` and ``invr-dec`` in-process.

A clean answer is: the API returns frames or raises an :class:`InvrFormatError`; each tool exits 0, or exits 1
with exactly one line on stderr that is not an "internal error"; nothing is written to the process's stdout
behind the tools' backs; ``invr-probe`` does not accept a file that ``invr-dec`` refuses (refused work, not a
refused file, excepted: frames over ``--max-pixels``, a file of no chunks). Anything else (another
exception, another exit status, a traceback, a crash of the process, a case running past ``--timeout``) is
unclean and listed with its seed, so it can be replayed (``--replay SEED``).

Cases run in a worker process that the parent restarts after a crash or a hang; cases are numbered and derived
from ``--seed``, so a run is reproducible.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.crafted import SAMPLES, make_case


# --- judging one case ------------------------------------------------------------------------------------

API_MAX_PIXELS = 1 << 20  # frames larger than this are demuxed, not rendered, by the API check
CLI_MAX_PIXELS = 1 << 16


class _Pipe(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        d = self._b.read(min(len(b), 4096))
        b[: len(d)] = d
        return len(d)


def judge_api(data: bytes, pipe: bool) -> str:
    import invrcodec
    from invrcodec.errors import InvrFormatError

    src = io.BufferedReader(_Pipe(data)) if pipe else io.BytesIO(data)
    try:
        with invrcodec.open(src) as f:
            s = f.header.stream
            if s.width * s.height > API_MAX_PIXELS:
                for _ in f.demux(audio=True):
                    pass
                return "accepted (demuxed)"
            for _ in f.decode(audio=True):
                pass
            return "accepted"
    except InvrFormatError as e:
        return f"refused {type(e).__name__}"
    except Exception as e:
        return f"UNCLEAN api {type(e).__name__}: {str(e)[:200]}"


def _run_tool(fn: Any) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = fn()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return int(code or 0), err.getvalue()


def _tool_verdict(tool: str, code: int, err: str) -> str | None:
    lines = err.splitlines()
    if code not in (0, 1):
        return f"UNCLEAN {tool} exit {code}: {err[-200:]!r}"
    if code == 1 and len(lines) != 1:
        return f"UNCLEAN {tool} {len(lines)} lines: {err[-300:]!r}"
    if "internal error" in err or "Traceback" in err:
        return f"UNCLEAN {tool}: {err[-300:]!r}"
    return None


def judge_cli(data: bytes, workdir: str) -> str:
    from invrcodec.cli import common, dec, probe

    path = os.path.join(workdir, "case.invr")
    with open(path, "wb") as fh:
        fh.write(data)
    pcode, perr = _run_tool(lambda: probe.main.main([path], standalone_mode=False))
    argv = ["-y", "--no-progress", "--max-pixels", str(CLI_MAX_PIXELS), "-f", "rawvideo", path,
            os.path.join(workdir, "out.rgb")]
    dcode, derr = _run_tool(lambda: common.run_main(dec.command, "invr-dec", argv))
    for verdict in (_tool_verdict("invr-probe", pcode, perr), _tool_verdict("invr-dec", dcode, derr)):
        if verdict:
            return verdict
    lawful = {"--max-pixels": " (max-pixels)", "no frames decoded": " (no chunks)"}  # refused work, not files
    why = next((tag for text, tag in lawful.items() if text in derr), "") if dcode else ""
    if pcode == 0 and dcode == 1 and not why:
        return f"UNCLEAN probe accepts what invr-dec refuses: {derr.strip()[:200]!r}"
    return f"probe {pcode} dec {dcode}{why}"


# --- the worker and the run ------------------------------------------------------------------------------


def _worker(conn: Any, cli_every: int) -> None:
    """Judge the cases the parent sends; stray writes to fd 1 (behind Python's back) make a case unclean."""
    import logging

    import torch

    torch.set_num_threads(1)  # tiny networks: threads cost more than they give, and shards run side by side
    logging.disable(logging.WARNING)  # the library's warnings are not answers (the CLIs' lines are captured)
    stray = tempfile.TemporaryFile()
    os.dup2(stray.fileno(), 1)
    with tempfile.TemporaryDirectory() as workdir:
        while True:
            seed = conn.recv()
            if seed is None:
                return
            data, did, pipe = make_case(seed)
            before = os.fstat(1).st_size
            answers = [judge_api(data, pipe)]
            if cli_every and seed % cli_every == 0:
                logging.disable(logging.NOTSET)
                answers.append(judge_cli(data, workdir))
                logging.disable(logging.WARNING)
            if os.fstat(1).st_size != before:
                answers.append("UNCLEAN bytes written to stdout")
            conn.send((seed, did, pipe, answers))


def run(seeds: list[int], cli_every: int, timeout: float, progress: bool,
        checkpoint: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    counts: Counter[str] = Counter()
    unclean: list[dict[str, Any]] = []
    start = time.monotonic()
    todo = list(seeds)
    while todo:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, cli_every), daemon=True)
        proc.start()
        while todo:
            seed = todo[0]
            parent.send(seed)
            if not parent.poll(timeout):
                verdict = "UNCLEAN crash" if not proc.is_alive() else f"UNCLEAN hang (> {timeout:g} s)"
                counts[verdict] += 1
                unclean.append({"seed": seed, "answer": verdict, "change": make_case(seed)[1]})
                todo.pop(0)
                proc.kill()
                break
            try:
                _, did, pipe, answers = parent.recv()
            except EOFError:
                counts["UNCLEAN crash"] += 1
                unclean.append({"seed": seed, "answer": "UNCLEAN crash", "change": make_case(seed)[1]})
                todo.pop(0)
                break
            todo.pop(0)
            for a in answers:
                key = a.split(":")[0] if a.startswith("UNCLEAN") else a
                counts[key] += 1
                if a.startswith("UNCLEAN"):
                    unclean.append({"seed": seed, "answer": a, "change": did, "pipe": pipe})
                    if progress:
                        print(f"case {seed}: {a} ({did})", file=sys.stderr, flush=True)
            done = len(seeds) - len(todo)
            if checkpoint and done % 2000 == 0:
                checkpoint({"cases": done, "seconds": round(time.monotonic() - start, 1),
                            "answers": dict(counts.most_common()), "unclean": unclean})
            if progress and done % 500 == 0:
                el = time.monotonic() - start
                print(f"{done}/{len(seeds)} cases, {el:.0f} s, {len(unclean)} unclean", file=sys.stderr,
                      flush=True)
        else:
            parent.send(None)
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    return {"cases": len(seeds), "seconds": round(time.monotonic() - start, 1),
            "answers": dict(counts.most_common()), "unclean": unclean}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="first case number")
    ap.add_argument("--cli-every", type=int, default=10, help="run invr-probe and invr-dec every N-th case")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a case counts as a hang")
    ap.add_argument("--replay", type=int, default=None, metavar="SEED", help="print and judge one case")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    if args.replay is not None:
        data, did, pipe = make_case(args.replay)
        print(did, "(pipe)" if pipe else "")
        print(judge_api(data, pipe))
        with tempfile.TemporaryDirectory() as d:
            print(judge_cli(data, d))
        return 0
    facts = {
        "command": " ".join(["python", "tools/fuzz.py", *(argv if argv is not None else sys.argv[1:])]),
        "samples": [p.name for p in SAMPLES],
        "machine": f"{_cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
    }

    def save(result: dict[str, Any]) -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result | facts, indent=1) + "\n")

    result = run(list(range(args.seed, args.seed + args.cases)), args.cli_every, args.timeout, progress=True,
                 checkpoint=save)
    save(result)
    result |= facts
    summary = {k: v for k, v in result.items() if k != "unclean"} | {"unclean": len(result["unclean"])}
    print(json.dumps(summary, indent=1))
    return 1 if result["unclean"] else 0


if __name__ == "__main__":
    sys.exit(main())

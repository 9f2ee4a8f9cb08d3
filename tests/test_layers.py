"""Imports only go down: the layers of invrcodec/ (README, "Layout"), read from the code's own imports.

Every module under invrcodec/ is parsed and every import in it counted, at module level, inside functions and
under ``TYPE_CHECKING`` alike: a module may import its own layer's package and the layers below it, never one
above it nor a sibling of its rank, and no modules import each other in a loop, within a layer either. The
file format never imports torch, PyAV or nncodec.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "invrcodec"

# The layers, lowest first; every module directly under invrcodec/ that is not named here is the ground floor
# (rank 0). A rank of several packages holds siblings that stand side by side and import neither the other.
LAYERS: list[tuple[str, ...]] = [
    ("invrcodec.format",),
    ("invrcodec.coding", "invrcodec.media"),
    ("invrcodec.net",),
    ("invrcodec.codec",),
    ("invrcodec.cli",),
    ("invrcodec", "invrcodec.encoder", "invrcodec.decoder"),  # the public face, its compatibility re-exports
]
GROUND = "the ground floor"
FORMAT_NEVER = ("torch", "av", "nncodec")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> tuple[int, str]:
    """The rank of a module of invrcodec and the layer it belongs to (a package, or the ground floor)."""
    for rank, names in enumerate(LAYERS, start=1):
        for name in names:
            top = name in LAYERS[-1]
            if module == name or (not top and module.startswith(name + ".")):
                return rank, name
    return 0, GROUND


def imports_of(path: Path, text: str) -> list[tuple[int, str]]:
    """(line, module) for every import in a file's text, relative ones resolved; ``from P import N`` names the
    module P.N when there is one, else P."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else source))
    return found


def wrong_imports(edited: dict[Path, str] | None = None) -> list[str]:
    """One line per import that runs up, or sideways to a sibling layer, or from the format to torch, PyAV or
    nncodec; ``edited``: texts to read instead of some files'."""
    wrong = []
    for module, path in MODULES.items():
        rank, layer = layer_of(module)
        where = path.relative_to(ROOT)
        text = (edited or {}).get(path) or path.read_text()
        for line, target in imports_of(path, text):
            head = target.split(".")[0]
            if head != "invrcodec":
                if layer == "invrcodec.format" and head in FORMAT_NEVER:
                    wrong.append(f"{where}:{line}: the file format imports {target}")
                continue
            to_rank, to_layer = layer_of(target)
            if to_layer == layer:
                continue
            if to_rank > rank:
                wrong.append(f"{where}:{line}: {layer} (rank {rank}) imports {target} of {to_layer}, "
                             f"a layer above it (rank {to_rank})")
            elif to_rank == rank and rank > 0:
                wrong.append(f"{where}:{line}: {layer} imports {target} of {to_layer}, a sibling of its rank")
    return wrong


def circles(edited: dict[Path, str] | None = None) -> list[list[str]]:
    """The loops of the module graph of invrcodec (within a layer too: the layers alone allow one there)."""
    graph = {m: sorted({t for _, t in imports_of(p, (edited or {}).get(p) or p.read_text())
                        if t in MODULES and t != m}) for m, p in MODULES.items()}
    found, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for target in graph[module]:
            visit(target, path + [module])
        done.add(module)

    for module in graph:
        visit(module, [])
    return found


def test_every_module_stands_in_a_layer() -> None:
    assert len(MODULES) > 40
    packages = {layer_of(m)[1] for m in MODULES}
    assert packages == {GROUND, *(name for names in LAYERS for name in names)}


def test_imports_only_go_down() -> None:
    wrong = wrong_imports()
    assert not wrong, "imports that do not go down:\n" + "\n".join(wrong)


def test_no_circle() -> None:
    loops = circles()
    assert not loops, "modules that import each other:\n" + "\n".join(" -> ".join(c) for c in loops)


def test_the_layer_test_sees_a_wrong_import() -> None:
    """The test itself: imports inside a function (from the format up into the pipeline, relative, and of
    torch) and under TYPE_CHECKING (from the network up into the pipeline) are seen."""
    demuxer, fit = PACKAGE / "format" / "demuxer.py", PACKAGE / "net" / "fit.py"
    up = "\n\ndef _up():\n    from ..codec import decoder\n    import torch\n"
    typing = "\nif TYPE_CHECKING:\n    from invrcodec.codec.encoder import Encoder\n"
    edited = {demuxer: demuxer.read_text() + up, fit: fit.read_text() + typing}
    wrong = "\n".join(wrong_imports(edited))
    assert "invrcodec/format/demuxer.py" in wrong and "imports invrcodec.codec.decoder" in wrong
    assert "the file format imports torch" in wrong
    assert "invrcodec/net/fit.py" in wrong and "imports invrcodec.codec.encoder" in wrong
    executors = PACKAGE / "codec" / "executors.py"
    back = "\n\ndef _back():\n    from invrcodec.codec.encoder import Encoder\n"
    assert ["invrcodec.codec.encoder", "invrcodec.codec.executors", "invrcodec.codec.encoder"] in \
        circles({executors: executors.read_text() + back})


def test_the_format_imports_no_torch_av_or_nncodec_when_run() -> None:
    code = ("import sys, invrcodec.format.demuxer, invrcodec.format.muxer\n"
            f"print(sorted(m for m in {FORMAT_NEVER!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

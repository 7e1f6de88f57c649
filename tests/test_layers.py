"""The package's imports run one way: cli/serve -> apps/search/train/evaluate/export -> models/data -> text/io/errors.

Every ``import anlam...`` in ``src/anlam`` counts, including the ones inside functions (a lazy
import is still a dependency). Packages of one tier may use each other, but never in a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "anlam"
TIERS = {
    "errors": 0, "io": 0, "text": 0, "samples": 0,
    "models": 1, "data": 1,
    "apps": 2, "search": 2, "train": 2, "evaluate": 2, "export": 2,
    "cli": 3, "serve": 3, "__main__": 3,
}


def _unit(module: str) -> str:
    """``anlam.search.index`` -> ``search``: the top-level package or module a dotted name belongs to."""
    return module.split(".")[1]


def _imports() -> set[tuple[str, str, str]]:
    """(importing unit, imported unit, file) for every anlam-internal import in the source tree."""
    edges = set()
    for path in SRC.rglob("*.py"):
        module = "anlam." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [node.module] if node.module != "anlam" else names[1:]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("anlam."):
                    if _unit(target) != _unit(module):
                        edges.add((_unit(module), _unit(target), str(path.relative_to(SRC))))
    return edges


def test_every_unit_has_a_tier() -> None:
    units = {path.relative_to(SRC).parts[0].removesuffix(".py") for path in SRC.glob("*")
             if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").is_file())}
    assert units - {"__init__"} <= set(TIERS), f"place these in a layer: {sorted(units - set(TIERS) - {'__init__'})}"


def test_imports_never_go_up_a_layer() -> None:
    upward = sorted(f"{file}: {src} imports {dst}" for src, dst, file in _imports() if TIERS[dst] > TIERS[src])
    assert not upward, "\n".join(upward)


def test_no_circles_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst, _ in _imports():
        graph.setdefault(src, set()).add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
                   for nxt in graph.get(start, ()))

    circles = sorted(f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if reaches(b, a, {b}))
    assert not circles, "\n".join(circles)


@pytest.mark.parametrize("module", ["anlam.export", "anlam.models.manifest", "anlam.text", "anlam.io", "anlam.data.readers"])
def test_light_modules_do_not_load_torch(module: str) -> None:
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'sentence_transformers') if m in sys.modules]; "
            "print(','.join(heavy))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"import {module} loaded {loaded}"

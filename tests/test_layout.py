"""The layout the design asks for: agents/ and genepool/ do not import each other (world/sim.py
joins them), and no module grows past what one reader can hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "evodevo"
MAX_LINES = 420


def imports(path: Path) -> set[str]:
    text = path.read_text()
    return set(re.findall(r"^\s*(?:from|import)\s+(evodevo(?:\.\w+)*)", text, flags=re.M))


@pytest.mark.parametrize("package, forbidden", [("agents", "evodevo.genepool"), ("genepool", "evodevo.agents")])
def test_agents_and_genepool_do_not_import_each_other(package, forbidden):
    files = sorted((PKG / package).glob("*.py"))
    assert files
    bad = {f.name: sorted(m for m in imports(f) if m.startswith(forbidden)) for f in files}
    assert not {k: v for k, v in bad.items() if v}
    # the check could fail: the simulation step does import both
    sim = imports(PKG / "world" / "sim.py")
    assert any(m.startswith("evodevo.agents") for m in sim) and any(m.startswith("evodevo.genepool") for m in sim)


def test_no_module_is_too_long():
    lengths = {str(p.relative_to(PKG)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    assert len(lengths) > 10
    assert {k: n for k, n in lengths.items() if n > MAX_LINES} == {}


def test_functions_on_the_simulation_path_are_short():
    """Everything the jitted step runs (agents/, genepool/ but its host-side reports, world/sim.py)
    reads in one screen: no function over 50 lines."""
    import ast

    files = [*(PKG / "agents").glob("*.py"), *(PKG / "genepool").glob("*.py"), PKG / "world" / "sim.py"]
    long = {}
    for path in files:
        if path.name == "report.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 50:
                long[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert len(files) > 10 and long == {}

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

"""`evodevo report`: the picture and the table of a run, from its files alone.

A synthetic run directory (a config, a few hundred lives whose lifespan rises over the run, a
TensorBoard file written with tensorboardX) stands in for a real run: no simulation is built or
compiled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from evodevo.cli import main
from evodevo.metrics import RecentLives
from evodevo.world.craftax_world import achievement_names

ENV = "Craftax-Classic-Symbolic-v1"
END = 3000  # the synthetic run's last step
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_lives(n: int = 400, seed: int = 0) -> list[dict]:
    """Lives ending evenly over the run, living longer (and dying more of old age) later on."""
    rng = np.random.default_rng(seed)
    names = achievement_names(ENV)
    lives = []
    for i, death in enumerate(np.sort(rng.integers(20, END + 1, n))):
        lifespan = int(min(death, 20 + 0.1 * death + rng.integers(0, 20)))
        cause = "old_age" if rng.random() < death / END / 2 else "zombie"
        achieved = [a for a in names[:6] if rng.random() < 0.2 + 0.6 * death / END]
        lives.append({"agent_id": i, "slot": i % 16, "birth_step": int(death) - lifespan, "death_step": int(death),
                      "lifespan": lifespan, "cause": cause, "parents": [], "achievements": achieved,
                      "asleep": bool(rng.random() < 0.3)})
    return lives


def make_run(root: Path, lives: list[dict], drives: bool = True, control_share: float = 0.0,
             control: str = "learning") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(f"seed: 0\nworld:\n  env: {ENV}\n  n_slots: 16\n"
                                      f"agents:\n  control_share: {control_share}\n  control: {control}\n")
    (root / "lifetimes.jsonl").write_text("".join(json.dumps(life) + "\n" for life in lives))
    if drives:
        from tensorboardX import SummaryWriter

        tb = SummaryWriter(str(root / "tb"))
        for step in range(250, END + 1, 250):
            tb.add_scalar("drives/health", 0.5 + step / END, step)
            tb.add_scalar("drives/health_spread", 0.1, step)
            tb.add_scalar("drives/curiosity", 1.0, step)
            tb.add_scalar("drives/curiosity_spread", 0.0, step)
            tb.add_scalar("pool/layer/entropy", 3.0 - step / END, step)
            tb.add_scalar("pool/head/entropy", 1.2, step)
            tb.add_scalar("world/plants", 2.0 + 10 * step / END, step)
            tb.add_scalar("world/plants_spread", 1.0, step)
            tb.add_scalar("lives/lifespan_mean", 1.0, step)  # not drawn
        tb.close()
    return root


def files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fifths(stdout: str) -> list[list[str]]:
    """The table's rows: span, lives, lifespan, Crafter, cause, cause share, asleep share."""
    return [line.split() for line in stdout.splitlines() if re.match(r"^\d[\d,]*-\d[\d,]*\s", line)]


def check_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 30_000, "five drawn panels and a table, not a blank picture"
    h, w = imread(path).shape[:2]
    assert 800 <= h <= 2000 and 1000 <= w <= 2500


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("report") / "run", synthetic_lives())


def test_report_draws_the_run_and_prints_rising_lifespans(run, capsys):
    before = files(run)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    check_png(run / "report.png")
    after = files(run)
    assert after.pop("report.png") and after == before, "the report writes nothing else into the run"
    rows = fifths(out.out)
    assert len(rows) == 5 and rows[0][0] == "0-600" and rows[-1][0] == "2,400-3,000"
    assert sum(int(r[1].replace(",", "")) for r in rows) == 400
    lifespans = [float(r[2]) for r in rows]
    assert lifespans[-1] > lifespans[0] + 100, lifespans
    assert float(rows[-1][3]) > float(rows[0][3]), "more achievements later: a higher Crafter score"
    assert rows[0][4] == "zombie" and rows[0][5].endswith("%") and rows[0][6].endswith("%")
    assert f"Wrote {run / 'report.png'}" in out.out


def test_crafter_score_is_the_runners(run):
    """The report's score of a group of lives is the one the runner logs for the same lives."""
    from evodevo import report

    loaded = report.load(run)
    recent = RecentLives(len(loaded.lives), loaded.names)
    for life in synthetic_lives():
        recent.add(life["lifespan"], life["achievements"])
    ours = report.stats(loaded.lives, loaded.names)
    assert ours["crafter"] == pytest.approx(recent.summary()["crafter_score"])
    assert ours["lifespan"] == pytest.approx(recent.summary()["lifespan_mean"])
    assert set(loaded.scalars) == {"drives/health", "drives/health_spread", "drives/curiosity",
                                   "drives/curiosity_spread", "pool/layer/entropy", "pool/head/entropy",
                                   "world/plants", "world/plants_spread"}


def test_out_elsewhere_and_a_run_without_scalars(tmp_path, capsys):
    """A random-agent run has no drives or pool: the picture says so and the run dir stays as it was."""
    run = make_run(tmp_path / "rnd", synthetic_lives(120, seed=1), drives=False)
    before = files(run)
    out = tmp_path / "pictures" / "rnd.png"
    out.parent.mkdir()
    assert main(["report", str(run), "--out", str(out)]) == 0
    check_png(out)
    assert files(run) == before
    assert [p.name for p in out.parent.iterdir()] == ["rnd.png"], "no temporary file left behind"
    assert len(fifths(capsys.readouterr().out)) == 5


@pytest.mark.parametrize("case, expected", [
    ("missing", "is not a run directory"),
    ("empty_dir", "is not a run directory"),
    ("no_lives_file", "has no finished lives yet"),
    ("empty_lives", "has no finished lives yet"),
    ("bad_env", "unknown world.env"),
    ("not_lives", "not written by `evodevo run`"),
])
def test_nothing_to_report_is_one_line(tmp_path, capsys, case, expected):
    d = tmp_path / "run"
    if case != "missing":
        d.mkdir()
    if case in ("no_lives_file", "empty_lives", "bad_env", "not_lives"):
        env = "Craftax-Nonesuch-v0" if case == "bad_env" else ENV
        (d / "config.yaml").write_text(f"world:\n  env: {env}\n")
    if case in ("empty_lives", "bad_env"):
        (d / "lifetimes.jsonl").write_text("")
    if case == "not_lives":
        (d / "lifetimes.jsonl").write_text('{"step": 3}\n')
    before = files(d) if d.exists() else None
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evodevo: error: ") and err.count("\n") == 1 and expected in err, err
    assert (files(d) if d.exists() else None) == before


def test_an_unwritable_picture_is_one_line(run, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "dir" / "report.png"
    assert main(["report", str(run), "--out", str(out)]) == 74
    err = capsys.readouterr().err
    assert err.startswith(f"evodevo: error: cannot write {out}") and err.count("\n") == 1, err


def test_the_in_run_control_of_learning_is_drawn_and_told_apart(tmp_path, capsys):
    """agents.control_share: the lives its hash picks (here made 30 steps shorter) are the control; the table says
    the learners' and the control's lifespans in the last fifth, and the picture draws both."""
    from evodevo.agents.kind import in_control

    lives = synthetic_lives()
    for life in lives:
        if in_control(np.array([life["agent_id"]]), 0.5)[0]:
            life["lifespan"] = max(life["lifespan"] - 30, 1)
    run = make_run(tmp_path / "run", lives, drives=False, control_share=0.5)
    assert main(["report", str(run)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "in-run control" in x]
    assert len(line) == 1, "one line, only with a control"
    learners, control = (float(x) for x in re.search(r"lifespan ([\d.]+) against ([\d.]+)", line[0]).groups())
    assert learners - control > 20 and line[0].startswith("last fifth, learners against")
    check_png(run / "report.png")
    # the in-run control of drive evolution (agents.control=drives) names its groups for what they are
    assert main(["report", str(make_run(tmp_path / "drives", lives, drives=False, control_share=0.5,
                                        control="drives"))]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "in-run control" in x]
    assert len(line) == 1 and line[0].startswith("last fifth, evolved drives against") and "hand-set drives" in line[0]
    assert main(["report", str(make_run(tmp_path / "plain", synthetic_lives(), drives=False))]) == 0
    assert "in-run control" not in capsys.readouterr().out

"""The `evodevo` command line, end to end: a run killed with kill -9 and resumed, bad input.

Every `evodevo` subprocess pays a JAX compile (the session's persistent compilation
cache makes all but the first one cheaper), so the checks share one run directory taken
through two processes in a background job (`chain`, tests/jobs/cli_chain.py). Bad input is checked in process through
`evodevo.cli.main`, plus one subprocess for the real exit status.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

from evodevo import config
from evodevo.cli import main
from conftest import job_report, lives_until
from evodevo.world.runner import CONFIG, LIFETIMES, TB, Runner
from jobs.cli_chain import checkpoint_steps, read_lives

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")
LIFE_KEYS = {"agent_id", "slot", "birth_step", "death_step", "lifespan", "cause", "parents", "achievements"}


def tree_digest(run_dir) -> dict:
    """path -> (size, mtime, sha256) of every file under run_dir."""
    out = {}
    for p in sorted(Path(run_dir).rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(run_dir))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[str(p.relative_to(run_dir))] = "dir"
    return out


# --------------------------------------------------------------------------- one run, two processes


@pytest.fixture(scope="module")
def chain(background):
    """One run directory through two `evodevo` processes (tests/jobs/cli_chain.py, a background job started at
    collection: its processes overlap the other tests): a `run` killed with SIGKILL once lives past a checkpoint
    were logged, and a `resume` to the length of the suite's uninterrupted run (conftest.py).
    (SIGINT/SIGTERM are tested in process in test_platform.py, through `evodevo.cli.main`.)"""
    res = job_report(background("cli_chain")[0])
    if "failed" in res["killed"]:
        pytest.fail(f"the killed run: {res['killed']['failed']}\n{res['killed']['stderr']}")
    res["resume"] = subprocess.CompletedProcess([], **res["resume"])
    res["dir"] = Path(res["dir"])
    return res


@pytest.mark.background("cli_chain")
def test_run_smoke(chain):
    killed, d = chain["killed"], chain["dir"]
    assert "Traceback" not in killed["stderr"]
    assert config.load(d / CONFIG) == config.load(TINY), "config.yaml is the resolved config"
    assert 0 < len(killed["checkpoints"]) <= config.load(TINY).run.keep_checkpoints
    lives = read_lives(d)
    assert len(lives) >= 4, "max_age 300: every first life ends within 300 steps"
    for life in killed["lives"] + lives:
        assert LIFE_KEYS <= set(life), sorted(LIFE_KEYS - set(life))
        assert 0 <= life["slot"] < 4 and life["lifespan"] == life["death_step"] - life["birth_step"]
        assert isinstance(life["achievements"], list) and isinstance(life["parents"], list)
    events = list((d / TB).glob("events.out.tfevents.*"))
    assert events and any(e.stat().st_size > 0 for e in events)


@pytest.mark.background("cli_chain")
def test_sigkill_leaves_lives_past_the_checkpoint(chain):
    killed = chain["killed"]
    assert killed["returncode"] == -signal.SIGKILL
    assert any(life["death_step"] > killed["checkpoints"][-1] for life in killed["lives"]), \
        "the kill came after lives that the checkpoint does not cover (they must not be logged twice)"


@pytest.mark.background("cli_chain")
def test_resume_smoke(chain):
    res, d, killed = chain["resume"], chain["dir"], chain["killed"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert f"Run at step {chain['total']}" in res.stdout
    assert checkpoint_steps(d)[-1] == chain["total"]
    kept = lives_until(killed["lives_text"], killed["checkpoints"][-1])
    assert kept and (d / LIFETIMES).read_text().startswith(kept), "resume appends to the lives of its checkpoint"


@pytest.mark.background("cli_chain")
def test_killed_and_resumed_run_equals_uninterrupted(chain, uninterrupted, shared_simulations):
    d, total = chain["dir"], chain["total"]
    ref_state, ref_lives = uninterrupted
    assert (d / LIFETIMES).read_text() == ref_lives

    lives = read_lives(d)
    assert len(lives) >= 4  # max_age 300: every founder's life has ended
    ids = [life["agent_id"] for life in lives]
    assert len(ids) == len(set(ids)), "no life is logged twice"
    resumed = Runner.load(d)
    state = jax.device_get(resumed.state)
    resumed.close()
    assert int(state.step) == total
    alive = set(np.asarray(state.slots.agent_id).tolist())
    assert alive.isdisjoint(ids)
    assert set(ids) | alive == set(range(int(state.next_agent_id))), "no life is lost"
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(ref_state), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


# --------------------------------------------------------------------------- bad input


def _one_line_error(capsys_or_text):
    err = capsys_or_text if isinstance(capsys_or_text, str) else capsys_or_text.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evodevo: error:"), err
    return lines[0]


@pytest.mark.background("cli_chain")
def test_bad_input_exits_2_without_touching_the_run(chain, tmp_path, capsys):
    d = chain["dir"]
    before = tree_digest(d)

    # a config file that does not exist
    assert main(["run", "--config", str(tmp_path / "nope.yaml"), "--run-dir", str(tmp_path / "new"), "--steps", "5"]) == 2
    assert "nope.yaml" in _one_line_error(capsys)
    assert not (tmp_path / "new").exists()

    # a bad --set names the key, before anything is written
    assert main(["run", "--config", TINY, "--run-dir", str(tmp_path / "new"), "--steps", "5",
                 "--set", "world.n_slots=0"]) == 2
    assert "world.n_slots" in _one_line_error(capsys)
    assert not (tmp_path / "new").exists()

    # `run` into a directory that already holds a run
    assert main(["run", "--config", TINY, "--run-dir", str(d), "--steps", "5"]) == 2
    assert "evodevo resume" in _one_line_error(capsys)

    # `resume` of a directory without a run, or of one that does not exist
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (empty, tmp_path / "missing"):
        assert main(["resume", str(target), "--steps", "5"]) == 2
        assert "evodevo run" in _one_line_error(capsys)
    assert list(empty.iterdir()) == [] and not (tmp_path / "missing").exists()

    # `resume` may change run.* keys only
    assert main(["resume", str(d), "--steps", "5", "--set", "world.n_slots=8"]) == 2
    assert "world.n_slots" in _one_line_error(capsys)

    # negative step counts
    assert main(["resume", str(d), "--steps", "-1"]) == 2
    _one_line_error(capsys)

    assert tree_digest(d) == before, "a refused command must not modify the run's files"


def test_resume_of_a_run_without_checkpoint_leaves_it_untouched(tmp_path, capsys):
    """A run killed before its first checkpoint (only config.yaml written): resume refuses, changes nothing."""
    d = tmp_path / "run"
    d.mkdir()
    (d / CONFIG).write_text(config.dump_yaml(config.load(TINY, ["run.snapshot=false"])))
    before = tree_digest(d)
    assert main(["resume", str(d), "--steps", "5"]) == 2
    _one_line_error(capsys)
    assert tree_digest(d) == before
    # ... and its advice works: the directory can be started as a new run
    assert main(["run", "--config", TINY, "--run-dir", str(d), "--steps", "0", "--set", "run.snapshot=false"]) == 0
    assert checkpoint_steps(d) == [0]


def test_bad_input_exit_status_of_the_console_script(tmp_path, evodevo_cmd, cli_env):
    r = subprocess.run(evodevo_cmd + ["run", "--config", str(tmp_path / "nope.yaml"), "--run-dir", str(tmp_path / "r"),
                                      "--steps", "5"], env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "nope.yaml" in _one_line_error(r.stderr)
    assert not (tmp_path / "r").exists()


def _ablations():
    """benchmarks/ablations.py as a module (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ablations", ROOT / "benchmarks" / "ablations.py")
    ablations = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablations)
    return ablations


def test_td_when_facing_pairs_each_transition_with_the_act_it_learned_from():
    """td[t] belongs to the act chosen at t - 1: its sums land on the kind faced and the act (DO or not) of that
    step; a transition not learned (NaN) counts nowhere; pooled, the drift is p (1 - p) (mean TD | DO - | other)."""
    ablations = _ablations()
    nan = float("nan")
    faced = np.array([[1, 2], [1, 0], [0, 0]])  # bit 0: hostile, bit 1: water
    do = np.array([[True, False], [False, False], [False, False]])
    td = np.array([[9.0, 9.0], [1.0, -2.0], [-0.5, nan]])  # row 0: the last chunk's act, left out
    reward = np.array([[9.0, 9.0], [0.5, -1.0], [0.0, nan]])
    found = ablations.td_by_act(("hostile", "water"), faced, do, td, reward)
    assert found == {"hostile": {"do": [1, 1.0, 0.5], "other": [1, -0.5, 0.0]},
                     "water": {"do": [0, 0.0, 0.0], "other": [1, -2.0, -1.0]}}
    pooled = ablations.td_pooled([found, found])
    assert pooled["hostile"] == {"n": 4, "p_do": 0.5, "td_do": 1.0, "td_other": -0.5, "reward_do": 0.5,
                                 "reward_other": 0.0, "do_logit_drift": 0.375}
    assert pooled["water"] == {"n": 2}  # no DO there: no gap to measure


def test_benchmark_cache_key_tolerates_new_switches_at_default():
    """A saved benchmark result stays valid when a config key was added since at the value it was added with,
    and not when the new key is set otherwise, an old key changed, or a key the config no longer has was saved."""
    ablations = _ablations()
    key = {"config": config.to_dict(config.Config()), "agent_steps": 1000}
    saved = json.loads(json.dumps(key))
    del saved["config"]["agents"]["reflex_need"]  # saved before the switch existed
    assert ablations.same_key(saved, key)
    on = json.loads(json.dumps(key))
    on["config"]["agents"]["reflex_need"] = True
    assert not ablations.same_key(saved, on)
    assert not ablations.same_key(saved, {**key, "agent_steps": 2000})
    changed = json.loads(json.dumps(saved))
    changed["config"]["agents"]["lr"] = 0.5
    assert not ablations.same_key(changed, key)
    removed = json.loads(json.dumps(saved))
    removed["config"]["agents"]["gone"] = 1
    assert not ablations.same_key(removed, key)
    # a key whose default changed since it was added: a result saved before it ran with the value it was added with
    old = json.loads(json.dumps(key))
    del old["config"]["world"]["nest"]
    ablations.ADDED_AS = {"world": {"nest": "drink"}}
    assert ablations.same_key(old, {**key, "config": {**key["config"], "world": {**key["config"]["world"], "nest": "drink"}}})
    assert not ablations.same_key(old, {**key, "config": {**key["config"], "world": {**key["config"]["world"], "nest": "spawn"}}})

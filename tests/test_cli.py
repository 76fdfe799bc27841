"""The `evodevo` command line, end to end: smoke run + resume, bad input, kill -9 / SIGTERM + resume.

Every `evodevo` subprocess pays a JAX compile (the session's persistent compilation
cache makes all but the first one cheap), so the checks are grouped into five
subprocess runs: run, resume (smoke, tiny.yaml as it is); run + SIGKILL, resume +
SIGTERM, resume (the kill test). Bad input is checked in process through
`evodevo.cli.main`, plus one subprocess for the real exit status.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from evodevo import config
from evodevo.cli import main
from evodevo.world.runner import CHECKPOINTS, CONFIG, LIFETIMES, TB, Runner

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")
LIFE_KEYS = {"agent_id", "slot", "birth_step", "death_step", "lifespan", "cause", "parents", "achievements"}


def checkpoint_steps(run_dir) -> list[int]:
    d = Path(run_dir) / CHECKPOINTS
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def read_lives(run_dir) -> list[dict]:
    """Complete lines of lifetimes.jsonl (a line being written may be cut)."""
    path = Path(run_dir) / LIFETIMES
    lives = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                lives.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return lives


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


def cli(cmd, args, env, timeout=300):
    return subprocess.run(cmd + [str(a) for a in args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def wait_for(cond, proc, what, timeout=240.0):
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"evodevo exited with {proc.returncode} before {what}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- smoke: run + resume


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, evodevo_cmd, cli_env):
    """`evodevo run` on configs/tiny.yaml as it is (300 steps), then `evodevo resume` (+100 steps)."""
    d = tmp_path_factory.mktemp("smoke") / "run"
    run = cli(evodevo_cmd, ["run", "--config", TINY, "--run-dir", d, "--steps", 300], cli_env)
    after_run = {"lives_text": (d / LIFETIMES).read_text() if (d / LIFETIMES).exists() else None,
                 "checkpoints": checkpoint_steps(d)}
    resume = cli(evodevo_cmd, ["resume", d, "--steps", 100], cli_env)
    return {"dir": d, "run": run, "resume": resume, "after_run": after_run}


def test_run_smoke(smoke):
    run, d = smoke["run"], smoke["dir"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert config.load(d / CONFIG) == config.load(TINY), "config.yaml is the resolved config"
    assert smoke["after_run"]["checkpoints"] and smoke["after_run"]["checkpoints"][-1] == 300
    lives = [json.loads(line) for line in smoke["after_run"]["lives_text"].splitlines()]
    assert len(lives) >= 4, "max_age 300: every first life ends within 300 steps"
    for life in lives:
        assert LIFE_KEYS <= set(life), sorted(LIFE_KEYS - set(life))
        assert 0 <= life["slot"] < 4 and life["lifespan"] == life["death_step"] - life["birth_step"]
        assert isinstance(life["achievements"], list) and isinstance(life["parents"], list)
    events = list((d / TB).glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


def test_resume_smoke(smoke):
    res, d = smoke["resume"], smoke["dir"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert checkpoint_steps(d)[-1] == 400
    assert len(checkpoint_steps(d)) <= config.load(TINY).run.keep_checkpoints
    text = (d / LIFETIMES).read_text()
    assert text.startswith(smoke["after_run"]["lives_text"]), "resume appends to the run's lives"
    lives = [json.loads(line) for line in text.splitlines()]
    ids = [life["agent_id"] for life in lives]
    assert len(ids) == len(set(ids))
    assert max(life["death_step"] for life in lives) <= 400
    assert "400" in res.stdout


# --------------------------------------------------------------------------- bad input


def _one_line_error(capsys_or_text):
    err = capsys_or_text if isinstance(capsys_or_text, str) else capsys_or_text.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evodevo: error:"), err
    return lines[0]


def test_bad_input_exits_2_without_touching_the_run(smoke, tmp_path, capsys):
    d = smoke["dir"]
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
    r = cli(evodevo_cmd, ["run", "--config", tmp_path / "nope.yaml", "--run-dir", tmp_path / "r", "--steps", 5],
            cli_env, timeout=120)
    assert r.returncode == 2
    assert "nope.yaml" in _one_line_error(r.stderr)
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- kill -9, SIGTERM, resume


def test_kill_sigterm_and_resume_lose_or_duplicate_no_life(tmp_path, evodevo_cmd, cli_env, tiny_cfg,
                                                          shared_simulations):
    d = tmp_path / "run"
    sets = ["--set", "run.snapshot=false", "--set", "run.checkpoint_every=200", "--set", "run.keep_checkpoints=2"]

    def start(args, name):
        out, err = open(tmp_path / f"{name}.out", "w"), open(tmp_path / f"{name}.err", "w")
        return subprocess.Popen(evodevo_cmd + [str(a) for a in args], env=cli_env, cwd=ROOT, stdout=out, stderr=err)

    # 1. kill -9 once a checkpoint past step 0 exists and lives after it were logged
    proc = start(["run", "--config", TINY, "--run-dir", d, "--steps", 10**7, *sets], "run")

    def lives_past_checkpoint():
        steps = checkpoint_steps(d)
        return bool(steps) and steps[-1] > 0 and any(life["death_step"] > steps[-1] for life in read_lives(d))

    wait_for(lives_past_checkpoint, proc, "a checkpoint and lives after it")
    proc.kill()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = checkpoint_steps(d)[-1]

    # 2. resume, then SIGTERM once it has written a new checkpoint: it stops cleanly and says how to go on
    proc = start(["resume", d, "--steps", 10**7], "resume1")
    wait_for(lambda: checkpoint_steps(d) and checkpoint_steps(d)[-1] > killed_at, proc, "a checkpoint after resume")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    out, err = (tmp_path / "resume1.out").read_text(), (tmp_path / "resume1.err").read_text()
    assert proc.returncode in (0, 130), err[-3000:]
    assert "Traceback" not in err
    assert f"evodevo resume {d}" in out
    stopped_at = int(re.search(r"at step (\d+)", out).group(1))
    assert checkpoint_steps(d)[-1] == stopped_at
    assert max(life["death_step"] for life in read_lives(d)) <= stopped_at

    # 3. resume to a total a little past the stop
    total = stopped_at + 150
    r = cli(evodevo_cmd, ["resume", d, "--steps", total - stopped_at], cli_env)
    assert r.returncode == 0, r.stderr[-3000:]

    # the same total in one uninterrupted run (in process, same config up to run.*)
    ref = Runner.create(tmp_path / "ref", tiny_cfg)
    assert ref.advance(total)
    ref_state = jax.device_get(ref.state)
    ref.close()
    assert (d / LIFETIMES).read_text() == (tmp_path / "ref" / LIFETIMES).read_text()

    lives = read_lives(d)
    assert len(lives) > 4
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

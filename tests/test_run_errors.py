"""`evodevo run/resume` when things go wrong or are new: a failed write (a full disk), a size
that cannot fit in memory, a first run's long compile, and a run path without pygame.

The runs are in process through `evodevo.cli.main` with the tiny preset and the session's
shared Simulation (one compile); a failed write is a writer monkeypatched to raise ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import lives_until
from evodevo.cli import EX_IOERR, main
from evodevo.world import checkpoint as checkpoint_mod
from evodevo.world import memory as memory_mod
from evodevo.world import runner as runner_mod
from evodevo.world.runner import CHECKPOINTS, COMPILING, LIFETIMES, LINEAGE, TB, LifetimeLog

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")
STEPS = 200  # 4 chunks of 50; checkpoints every 100
NO_SPACE = os.strerror(errno.ENOSPC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def checkpoint_steps(run_dir) -> list[int]:
    d = Path(run_dir) / CHECKPOINTS
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def one_line(text: str, prefix: str = "evodevo: error:") -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith(prefix), text
    return lines[0]


def run_cli(d, steps, *overrides):
    return main(["run", "--config", TINY, "--run-dir", str(d), "--steps", str(steps), "--set", "run.snapshot=false",
                 *[a for o in overrides for a in ("--set", o)]])


def synthetic_history(step=1000):
    """2 encoders, 3 layers, 1 head as founders; splits with parents; some discarded."""
    gid = np.full(16, -1)
    parent = np.full(16, -1)
    kind = np.zeros(16, int)
    born = np.zeros(16, int)
    end = np.full(16, -1)
    rows = [(0, -1, 0, 0, -1), (1, -1, 0, 0, 400), (2, -1, 1, 0, -1), (3, -1, 1, 0, -1), (4, -1, 1, 0, 700),
            (5, -1, 2, 0, -1), (6, 2, 1, 200, -1), (7, 6, 1, 500, 900), (8, 0, 0, 300, -1), (9, 5, 2, 600, -1)]
    for i, (g, p, k, b, e) in enumerate(rows):
        gid[i], parent[i], kind[i], born[i], end[i] = g, p, k, b, e
    return {"gene_id": gid, "parent_id": parent, "kind": kind, "birth_step": born, "end_step": end}, step


# --------------------------------------------------------------------------- 1: a failed write


@pytest.fixture(scope="module")
def reference(uninterrupted):
    """lifetimes.jsonl of an uninterrupted STEPS-step tiny run: the lives of the suite's longer one that ended by then."""
    return lives_until(uninterrupted[1], STEPS)


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, NO_SPACE)


def fail_lifetimes(mp):
    """The append of the first chunk with a death past step 100 writes half its text, then the disk is full."""
    real = LifetimeLog.append

    def append(self, lives):
        if not any(life["death_step"] > 100 for life in lives):
            return real(self, lives)
        text = "".join(json.dumps(life) + "\n" for life in lives)
        with open(self.path, "a") as f:
            f.write(text[: len(text) // 2])  # a cut line: what a full disk leaves
        no_space()

    mp.setattr(LifetimeLog, "append", append)
    return LIFETIMES, None


def calls_failing_at(n, real, fail):
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        return fail(*args, **kwargs) if calls["n"] == n else real(*args, **kwargs)

    return wrapper


def fail_checkpoint_space(mp):
    """No room for the checkpoint at step 200 (the 3rd: 0, 100, 200): refused before orbax writes."""
    def full(path):
        return shutil.disk_usage(path)._replace(free=1000)

    mp.setattr(checkpoint_mod, "shutil", types.SimpleNamespace(disk_usage=calls_failing_at(3, shutil.disk_usage, full)))
    return f"{CHECKPOINTS}/200", 100


def fail_checkpoint_orbax(mp):
    """orbax/tensorstore fail mid-save at step 200 the way they report a full disk."""
    import orbax.checkpoint as ocp

    def full(*_args, **_kwargs):
        raise ValueError("RESOURCE_EXHAUSTED: Error writing \"births/0\" in OCDBT database: Failed writing: "
                         "Failed to write 8 bytes to file 17: No space left on device [os_error_code='28']")

    mp.setattr(ocp.CheckpointManager, "save", calls_failing_at(3, ocp.CheckpointManager.save, full))
    return f"{CHECKPOINTS}/200", 100


def fail_tensorboard(mp):
    """The TensorBoard events of steps past 150 cannot be written (the chunk ending at 200)."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import RecordWriter

    real = RecordWriter.write

    def write(self, data):
        if Event.FromString(data).step > 150:
            no_space()
        real(self, data)

    mp.setattr(RecordWriter, "write", write)
    return TB, 100


def fail_lineage(mp):
    """lineage.png of the checkpoint at step 100 (the 2nd picture) cannot be written."""
    import matplotlib.image

    mp.setattr(matplotlib.image, "imsave", calls_failing_at(2, matplotlib.image.imsave, no_space))
    return LINEAGE, 100


# Where the resume after the failure is run too: a cut line in lifetimes.jsonl and a half-written checkpoint. The other
# failures leave the same files behind (lives appended past the intact checkpoint), which the same truncation on resume
# handles; running their resume as well cost ~6 s each and tested that code again.
RESUMED = (fail_lifetimes, fail_checkpoint_orbax)


@pytest.mark.parametrize("fail", [fail_lifetimes, fail_checkpoint_space, fail_checkpoint_orbax, fail_tensorboard,
                                  fail_lineage], ids=lambda f: f.__name__[5:])
def test_failed_write_ends_the_run_with_one_line_and_resumes(fail, reference, shared_simulations, tmp_path, capsys):
    d = tmp_path / "run"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.MonkeyPatch.context() as mp:
        name, intact = fail(mp)
        rc = run_cli(d, STEPS)
    out, err = capsys.readouterr()
    assert rc == EX_IOERR, err
    line = one_line(err)
    steps = checkpoint_steps(d)
    intact = steps[-1] if intact is None else intact
    assert steps[-1] == intact < STEPS, "the message's checkpoint is the latest one on disk"
    assert f"cannot write {d / name}: {NO_SPACE}" in line
    assert f"checkpoint step {intact}:" in line
    assert line.endswith(f"`evodevo resume {d} --steps {STEPS - intact}`")
    assert "Run at step" not in out and "warning" not in out
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert (d / LINEAGE).read_bytes().startswith(PNG_MAGIC), "the previous picture stays whole"

    if fail not in RESUMED:
        return
    # ... and the advice works: every life logged exactly once, as in an uninterrupted run
    assert main(["resume", str(d), "--steps", str(STEPS - intact)]) == 0, capsys.readouterr().err
    assert checkpoint_steps(d)[-1] == STEPS
    assert (d / LIFETIMES).read_text() == reference
    left = [p.name for p in d.rglob("*") if "tmp" in p.name]
    assert left == [], f"temporary files left behind: {left}"


def test_failed_write_before_the_first_checkpoint_says_to_start_again(shared_simulations, tmp_path, capsys,
                                                                      monkeypatch):
    d = tmp_path / "run"
    monkeypatch.setattr(checkpoint_mod, "shutil", types.SimpleNamespace(
        disk_usage=lambda path: types.SimpleNamespace(free=0)))
    assert run_cli(d, 100) == EX_IOERR
    line = one_line(capsys.readouterr().err)
    assert f"cannot write {d / CHECKPOINTS / '0'}: {NO_SPACE}" in line and "evodevo run" in line
    monkeypatch.setattr(checkpoint_mod, "shutil", shutil)  # (not undo(): that would unshare the Simulation)
    assert run_cli(d, 0) == 0, "the run directory can be started again"


def test_lifetime_log_fsyncs_and_truncates_atomically(tmp_path, monkeypatch):
    log = LifetimeLog(tmp_path / LIFETIMES)
    lives = [{"death_step": s, "lifespan": 1, "achievements": []} for s in (5, 10, 15)]
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log.append(lives[:2])
    log.append([])
    log.append(lives[2:])
    assert log.read() == lives and len(synced) == 2, "each non-empty append is fsynced"
    before = log.path.read_bytes()
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        log.truncate_to(10)
    assert log.path.read_bytes() == before, "a failed truncation leaves the file as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LIFETIMES], "and no temporary file"
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert log.truncate_to(10) == lives[:2] and log.read() == lives[:2]


# --------------------------------------------------------------------------- 2: a size that cannot fit


def test_state_estimate_is_the_size_of_a_real_state(sim, state):
    import jax

    need, per_slot = memory_mod.state_bytes(sim)
    assert need == sum(x.nbytes for x in jax.tree.leaves(state))
    assert jax.tree.structure(sim.template()) == jax.tree.structure(state)
    pool = sum(x.nbytes for x in jax.tree.leaves(state.pool))
    counters = sum(x.nbytes for x in jax.tree.leaves((state.step, state.key, state.next_agent_id, state.births,
                                                      state.deaths)))  # deaths: as long as 11 slots would be
    # the pool and the counters do not grow with the slots; the rest does, but for the carried act's scalars
    assert 0 <= need - pool - counters - per_slot * sim.n < 1024


def test_impossible_size_is_refused_before_anything_is_made(tmp_path, capsys, monkeypatch, shared_simulations):
    d = tmp_path / "new" / "run"
    assert run_cli(d, 5, "world.n_slots=1000000000") == 2
    line = one_line(capsys.readouterr().err)
    assert "world.n_slots=1,000,000,000" in line and "TiB" in line and "available" in line, line
    assert not (tmp_path / "new").exists()

    # the tiny preset against a machine with one byte too few
    sim = shared_simulations(runner_mod.config_mod.load(TINY, ["run.snapshot=false"]))
    need, _ = memory_mod.state_bytes(sim)
    monkeypatch.setattr(memory_mod, "available_memory", lambda: need - 1)
    assert run_cli(d, 5) == 2
    assert "world.n_slots=4" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(memory_mod, "available_memory", lambda: need)
    memory_mod.check_memory(sim)  # exactly enough: accepted


# --------------------------------------------------------------------------- 3 and 5: a first run, without pygame


def test_first_run_says_it_compiles_and_what_comes_next_without_pygame(shared_simulations, tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # any `import pygame` now fails
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    d = tmp_path / "run"
    assert run_cli(d, 100, "run.progress=true", "run.snapshot=true") == 0
    out, err = capsys.readouterr()
    bars = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    assert COMPILING in bars[0], "the bar says why it sits at 0%"
    assert COMPILING not in bars[-1] and "100/100" in bars[-1], "... until the first chunk returns"
    assert "warning" not in out, out  # the lineage tree was drawn
    for cmd in (f"evodevo view {d}", f"tensorboard --logdir {d}/tb", f"evodevo resume {d} --steps 100"):
        assert cmd in out, out
    assert (d / LINEAGE).read_bytes().startswith(PNG_MAGIC)
    assert "SDL_VIDEODRIVER" not in os.environ


def test_run_path_does_not_import_pygame():
    code = ("import os, sys, numpy as np\n"
            "import evodevo.world.runner, evodevo.cli\n"
            "assert 'pygame' not in sys.modules, 'importing the run path imports pygame'\n"
            "from evodevo.genepool import report\n"
            "h = {'gene_id': np.array([0, 1, -1]), 'parent_id': np.array([-1, 0, -1]), 'kind': np.array([1, 1, 0]),\n"
            "     'birth_step': np.array([0, 50, 0]), 'end_step': np.array([-1, 80, -1])}\n"
            "image = report.lineage_image(h, 100)\n"
            "assert 'pygame' not in sys.modules, 'drawing the lineage tree imports pygame'\n"
            "assert 'SDL_VIDEODRIVER' not in os.environ\n")
    env = {k: v for k, v in os.environ.items() if k != "SDL_VIDEODRIVER"}
    env["JAX_PLATFORMS"] = "cpu"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "pygame" not in r.stdout + r.stderr, "the pygame banner"


def test_lineage_image_draws_every_gene(tmp_path):
    from evodevo.genepool import report

    history, step = synthetic_history()
    image = report.lineage_image(history, step)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[1:] == (1000, 3)
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    for kind, c in report.KIND_COLOURS.items():
        assert tuple(c) in colours, f"no living {kind} gene drawn"
    runner_mod.write_png(tmp_path / LINEAGE, image)
    assert (tmp_path / LINEAGE).read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == [LINEAGE]

"""Scale: births and layer insertions computed B at a time (`run.birth_batch`), and the host loop
as one process of several (`world/hosts.py`: only process 0 writes the run's files)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CONFIGS, job_report, tiny_config
from evodevo.cli import main
from evodevo.config import ConfigError
from evodevo.world import hosts
from evodevo.world import sim as sim_mod
from evodevo.world.runner import CHECKPOINTS, CONFIG, LIFETIMES, LINEAGE, TB, Runner

BATCH = 3  # of the tiny preset's 4 slots: 4 deaths in a step take two batches, the second padded


@pytest.mark.background("birth_batches")
def test_births_and_growth_in_batches_equal_one_at_a_time(background):
    """Births and layer insertions one at a time (B=1, the CPU's default) and three at a time (vmapped,
    padded, two batches): every slot is born and then grows (develop=age at an age that triggers it), so
    each takes more than one batch (tests/jobs/birth_batches.py). Ids, genomes and masks equal; floats
    equal to within rounding (the suite's XLA flags let a vmapped kernel round otherwise)."""
    completed, out = background("birth_batches")
    report, x = job_report(completed), np.load(f"{out}.npz")
    assert report["batches"] == [1, BATCH]
    assert report["n"] > BATCH and report["grew"] > BATCH  # all born, all grew: two batches each
    names = [k[len("one/"):] for k in x.files if k.startswith("one/")]
    assert len(names) > 20 and sorted(names) == sorted(k[len("batched/"):] for k in x.files if k.startswith("batched/"))
    for name in names:
        a, b = x[f"one/{name}"], x[f"batched/{name}"]
        if a.dtype.kind in "iub":
            assert np.array_equal(a, b), name
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, equal_nan=True, err_msg=name)


def test_birth_batch_setting(monkeypatch):
    assert sim_mod.birth_batch(5, 4096) == 5
    monkeypatch.setattr(sim_mod.jax, "default_backend", lambda: "cpu")
    assert sim_mod.birth_batch(0, 4096) == 1
    monkeypatch.setattr(sim_mod.jax, "default_backend", lambda: "gpu")
    assert [sim_mod.birth_batch(0, n) for n in (4, 64, 65, 1024, 4096)] == [1, 1, 2, 16, 64]
    monkeypatch.undo()
    for bad, says in (("-1", "need >= 0"), ("5", "exceeds world.n_slots=4")):
        with pytest.raises(ConfigError, match=f"'run.birth_batch'.*{says}") as e:
            tiny_config(f"run.birth_batch={bad}")
        assert "\n" not in str(e.value)


def test_a_process_other_than_0_runs_but_writes_no_run_files(tmp_path, tiny_cfg, shared_simulations, monkeypatch):
    """Process 1 of a multi-host run runs the chunks and takes part in the checkpoints, and writes
    none of process 0's files. Simulated: the process index as hosts.py sees it is 1 (patching
    `jax.process_index` itself would tell orbax too, which then, without a process 0, makes no
    checkpoint directory)."""
    monkeypatch.setattr(hosts, "process_index", lambda: 1)
    d = tmp_path / "run"
    runner = Runner.create(d, tiny_config("run.snapshot=true", "run.snapshot_every_s=0.001"))
    assert runner.advance(100)
    runner.close()
    assert runner.step == 100
    assert not any((d / name).exists() for name in (LIFETIMES, TB, CONFIG, LINEAGE, "snapshot.npz"))
    assert sorted(int(p.name) for p in (d / CHECKPOINTS).iterdir() if p.name.isdigit()) == [0, 100]


def test_distributed_flags_that_cannot_join_are_a_one_line_error(tmp_path, capsys):
    d = tmp_path / "run"
    code = main(["run", "--config", str(CONFIGS / "tiny.yaml"), "--run-dir", str(d),
                 "--steps", "1", "--process-id", "0"])  # no coordinator, no cluster to find one in
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("evodevo: error: --distributed:") and "\n" not in err
    assert not d.exists()

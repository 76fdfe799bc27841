"""Scale: births and layer insertions computed B at a time (`run.birth_batch`), and the host loop
as one process of several (`world/hosts.py`: only process 0 writes the run's files)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CONFIGS, tiny_config
from evodevo.cli import main
from evodevo.config import ConfigError
from evodevo.world import hosts
from evodevo.world import sim as sim_mod
from evodevo.world.runner import CHECKPOINTS, CONFIG, LIFETIMES, LINEAGE, TB, Runner

BATCH = 3  # of the tiny preset's 4 slots: 4 deaths in a step take two batches, the second padded


def run(sim, state, chunks):
    s, outs = jax.tree.map(jnp.copy, state), []
    for _ in range(chunks):
        s, out = sim.run_chunk(s)
        outs.append(jax.device_get(out))
    return jax.device_get(s), jax.tree.map(lambda *xs: np.concatenate(xs), *outs)


def test_births_and_growth_in_batches_equal_one_at_a_time(sim, state, simulation):
    """The same run, bit for bit, with births and insertions one at a time (B=1, the suite's tiny
    Simulation on a CPU) and three at a time (vmapped, padded, two batches in a step)."""
    batched = simulation(tiny_config(f"run.birth_batch={BATCH}"))
    assert (sim.batch, batched.batch) == (1, BATCH)
    # All four founders die of old age at step 3: one step with more births than a batch holds.
    s0 = state.replace(slots=state.slots.replace(birth_step=jnp.full(sim.n, 3 - sim.cfg.world.max_age, jnp.int32)))
    (s1, out1), (s3, out3) = run(sim, s0, 2), run(batched, s0, 2)
    deaths = (out1["cause"] > 0).sum(1)
    assert deaths.max() > BATCH
    grown = np.diff(out1["record"]["developmental"].sum(-1), axis=0)  # layers grown in, per step and slot
    assert (grown > 0).any()
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path((s1, out1)), jax.tree.leaves((s3, out3))):
        assert np.array_equal(a, b, equal_nan=True), jax.tree_util.keystr(path)


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

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


def test_births_and_growth_in_batches_equal_one_at_a_time(state, simulation):
    """Births and layer insertions one at a time (B=1, the CPU's default) and three at a time (vmapped,
    padded, two batches): every slot is born and then grows (develop=age at an age that triggers it), so
    each takes more than one batch. Only `born` and `grow` are compiled. Ids, genomes and masks equal;
    floats equal to within rounding (the suite's XLA flags let a vmapped kernel round otherwise)."""
    sims = [simulation(tiny_config(f"run.birth_batch={b}", "agents.develop=age")) for b in (1, BATCH)]
    assert [x.batch for x in sims] == [1, BATCH]
    n = sims[0].n
    died = jnp.ones(n, bool)
    ages = jnp.full(n, sims[0].cfg.agents.develop_age, jnp.int32)
    key = jax.random.PRNGKey(5)

    def lifecycle(sim, st):
        agents = sim.born(st.pool, st.agents, st.genomes, died, key)
        return agents, sim.grow(sim.hp, st.pool, st.agents, st.genomes, ages, key)

    one, batched = (jax.device_get(jax.jit(lambda st, x=x: lifecycle(x, st))(state)) for x in sims)
    assert n > BATCH and one[1][2].sum() > BATCH  # all born, all grew: two batches each
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(one), jax.tree.leaves(batched)):
        if a.dtype.kind in "iub":
            assert np.array_equal(a, b), jax.tree_util.keystr(path)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, equal_nan=True, err_msg=jax.tree_util.keystr(path))


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

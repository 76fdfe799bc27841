"""The slot axis split over devices (`world/sharding.py`), on 2 CPU devices in a subprocess
(`--xla_force_host_platform_device_count=2` must be set before JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import JAX_CACHE_ENV, ROOT, tiny_config
from evodevo.config import ConfigError
from evodevo.world import sharding

CHUNKS = 4  # of the tiny preset's 50 steps: lives end and newborns come from the pool

SCRIPT = r"""
import json, sys
import jax, numpy as np
from evodevo import config
from evodevo.world import sharding
from evodevo.world.sim import Simulation

cfg = config.load(sys.argv[1], ["run.snapshot=false"])  # run.devices 0: both devices
sim = Simulation(cfg)
state = sim.init()
outs = []
for _ in range(int(sys.argv[3])):
    state, out = sim.run_chunk(state)
    outs.append(jax.device_get(out))
out = jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
spec = lambda x: str(getattr(x.sharding, "spec", "one device"))
flat = {f"out/{jax.tree_util.keystr(k)}": np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(out)}
flat.update({f"state/{i}": np.asarray(v) for i, v in enumerate(jax.tree.leaves(jax.device_get(state)))})
np.savez(sys.argv[2], **flat)
try:
    sharding.slot_mesh(5, 2)
    uneven = ""
except Exception as e:
    uneven = str(e)
print(json.dumps({"agents": spec(state.agents.theta), "pool": spec(state.pool.next_id), "uneven": uneven}))
"""


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    """The tiny preset run for CHUNKS chunks on 2 CPU devices in a subprocess: (its report, its arrays)."""
    path = tmp_path_factory.mktemp("sharded") / "two.npz"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=str(ROOT), **JAX_CACHE_ENV)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "configs" / "tiny.yaml"), str(path), str(CHUNKS)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), dict(np.load(path))


def test_two_devices_give_the_same_lives_as_one(two_devices, sim, state):
    """The same run on 1 device (this process, the suite's compiled tiny Simulation) and on 2."""
    report, two = two_devices
    assert report["agents"] == "P('slots',)" and report["pool"] == "P()"
    s, outs = jax.tree.map(jnp.copy, state), []
    for _ in range(CHUNKS):
        s, out = sim.run_chunk(s)
        outs.append(jax.device_get(out))
    out = jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
    one = {f"out/{jax.tree_util.keystr(k)}": np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(out)}
    one.update({f"state/{i}": np.asarray(v) for i, v in enumerate(jax.tree.leaves(jax.device_get(s)))})
    assert set(one) == set(two)
    assert (one["out/['cause']"] > 0).sum() > 0  # lives ended: the pool's path ran
    # Lives (causes, actions, ids, parents, genomes, achievements): identical. Floats (weights, the
    # pool, metrics): equal up to the order of float sums.
    for name, a in one.items():
        if a.dtype.kind in "iub":
            assert np.array_equal(a, two[name]), name
        else:
            np.testing.assert_allclose(a, two[name], rtol=1e-3, atol=1e-4, equal_nan=True, err_msg=name)


def test_slots_not_divisible_by_devices_is_a_one_line_error(two_devices):
    uneven = two_devices[0]["uneven"]
    assert "world.n_slots=5" in uneven and "\n" not in uneven


def test_more_devices_than_present_is_a_one_line_error():
    with pytest.raises(ConfigError, match="run.devices=64"):
        sharding.slot_mesh(64, 64)
    assert sharding.slot_mesh(tiny_config().world.n_slots, 0) is None  # one CPU device: nothing placed

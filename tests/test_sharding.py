"""The slot axis split over devices (`world/sharding.py`), on 2 CPU devices in a subprocess
(`--xla_force_host_platform_device_count=2` must be set before JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import JAX_CACHE_ENV, ROOT, tiny_config
from evodevo.config import ConfigError
from evodevo.world import sharding

SCRIPT = r"""
import json, sys
import jax, numpy as np
from evodevo import config
from evodevo.world import sharding
from evodevo.world.sim import Simulation

def run(devices):
    cfg = config.load(sys.argv[1], ["run.snapshot=false", f"run.devices={devices}"])
    sim = Simulation(cfg)
    state = sim.init()
    outs = []
    for _ in range(4):
        state, out = sim.run_chunk(state)
        outs.append(jax.device_get(out))
    out = jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
    spec = lambda x: str(getattr(x.sharding, "spec", "one device"))
    return out, jax.device_get(state), spec(state.agents.theta), spec(state.pool.next_id)

one, s1, spec1, _ = run(1)
two, s2, spec2, pool_spec = run(2)
lives = {k: bool(np.array_equal(one[k], two[k])) for k in ("cause", "action")}
lives.update({k: bool(np.array_equal(one["record"][k], two["record"][k])) for k in one["record"]
              if np.asarray(one["record"][k]).dtype.kind in "iub"})
close = all(np.allclose(a, b, rtol=1e-4, atol=1e-4, equal_nan=True)
            for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)) if np.asarray(a).dtype.kind == "f")
try:
    sharding.slot_mesh(5, 2)
    uneven = ""
except Exception as e:
    uneven = str(e)
print(json.dumps({"lives": lives, "close": close, "deaths": int((one["cause"] > 0).sum()),
                  "spec1": spec1, "spec2": spec2, "pool_spec": pool_spec, "uneven": uneven}))
"""


@pytest.fixture(scope="module")
def two_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=str(ROOT), **JAX_CACHE_ENV)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "configs" / "tiny.yaml")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_devices_give_the_same_lives_as_one(two_devices):
    r = two_devices
    assert r["spec2"] == "P('slots',)" and r["pool_spec"] == "P()"
    assert r["deaths"] > 0  # lives ended, newborns were drawn from the pool: the pool's path ran
    assert all(r["lives"].values()), r["lives"]  # causes, actions, ids, parents, genomes: identical
    assert r["close"]  # weights and pool: equal up to the order of float sums


def test_slots_not_divisible_by_devices_is_a_one_line_error(two_devices):
    assert "world.n_slots=5" in two_devices["uneven"] and "\n" not in two_devices["uneven"]


def test_more_devices_than_present_is_a_one_line_error():
    with pytest.raises(ConfigError, match="run.devices=64"):
        sharding.slot_mesh(64, 64)
    assert sharding.slot_mesh(tiny_config().world.n_slots, 0) is None  # one CPU device: nothing placed

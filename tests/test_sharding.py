"""The slot axis split over devices (`world/sharding.py`), on 2 CPU devices in a background job
(tests/jobs/two_devices.py: `--xla_force_host_platform_device_count=2` must be set before JAX starts)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TWO_DEVICE_CHUNKS as CHUNKS
from conftest import job_report, tiny_config
from evodevo.config import ConfigError
from evodevo.world import sharding


@pytest.fixture(scope="module")
def two_devices(background):
    """The tiny preset run for CHUNKS chunks on 2 CPU devices (tests/jobs/two_devices.py, started
    in the background at collection): (its report, its arrays)."""
    completed, path = background("two_devices")
    return job_report(completed), dict(np.load(path.with_suffix(".npz")))


@pytest.mark.background("two_devices")
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


@pytest.mark.background("two_devices")
def test_slots_not_divisible_by_devices_is_a_one_line_error(two_devices):
    uneven = two_devices[0]["uneven"]
    assert "world.n_slots=5" in uneven and "\n" not in uneven


def test_more_devices_than_present_is_a_one_line_error():
    with pytest.raises(ConfigError, match="run.devices=64"):
        sharding.slot_mesh(64, 64)
    assert sharding.slot_mesh(tiny_config().world.n_slots, 0) is None  # one CPU device: nothing placed

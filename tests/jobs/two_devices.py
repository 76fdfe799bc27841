"""Background job of tests/test_sharding.py: the tiny preset for CHUNKS chunks on 2 CPU devices.

    python two_devices.py CONFIG OUT.npz CHUNKS     (XLA_FLAGS=--xla_force_host_platform_device_count=2)

Writes every output and state array to OUT.npz; prints one JSON line (the shardings seen, and the
error for a slot count the devices do not divide).
"""

import json
import sys

import jax
import numpy as np

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

"""Background job of tests/test_platform.py: one chunk of configs/gpu.yaml on the CPU at 4 slots.

    python gpu_preset.py CONFIG

No other test builds the GPU preset (nor its model sizes, the default ones). Model and pool sizes
stay as they are; only the slots are cut (a model cut to the tiny preset's sizes compiled only ~10%
faster: compile time follows the program, not the array sizes). 100 steps, so that one pool update
(update_every 100) runs with 256 layer genes and 512 recent dead, and its agents hold their
inherited weights in bfloat16 (the preset's agents.weights_dtype). Prints one JSON line.
"""

import json
import sys

import jax

from evodevo import config
from evodevo.world.craftax_world import Cause
from evodevo.world.sim import Simulation

sim = Simulation(config.load(sys.argv[1], ["world.n_slots=4", "run.chunk_steps=100", "run.snapshot=false"]))
state, out = sim.run_chunk(sim.init())
print(json.dumps({
    "step": int(state.step), "action_shape": list(out["action"].shape),
    "capacities": [state.pool.bank(k).capacity for k in ("encoder", "layer", "head", "drive")],
    "updates": int(state.pool.updates), "broken": int(state.deaths[Cause.broken]),
    "births": int(state.births),
    "matrix_dtypes": sorted({str(x.dtype) for k, t in state.agents.base.items() if k != "drive"
                             for x in jax.tree.leaves(t) if x.ndim >= 3}),  # [slots, rows, cols]
}))

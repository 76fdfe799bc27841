"""Background job of tests/test_scale.py: every slot of the tiny preset is born and then grows (agents.develop=age
at an age that triggers it), once one slot at a time (run.birth_batch=1, the CPU's default) and once BATCH at a
time (vmapped, padded: more than one batch each). Only `born` and `grow` compile (~30 s here, twice), off the main
process's critical path.

    python birth_batches.py CONFIG OUT.npz BATCH

Writes every leaf of both results to OUT.npz (`one/<path>`, `batched/<path>`); prints one JSON line: the batch
sizes the two simulations took, the slot count and how many slots grew.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from evodevo import config
from evodevo.world.sim import Simulation

path, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
sims = [Simulation(config.load(path, ["run.snapshot=false", f"run.birth_batch={b}", "agents.develop=age"]))
        for b in (1, batch)]
state = Simulation(config.load(path, ["run.snapshot=false"])).init()  # the suite's shared founders (cached compile)
n = sims[0].n
died = jnp.ones(n, bool)
ages = jnp.full(n, sims[0].cfg.agents.develop_age, jnp.int32)
key = jax.random.PRNGKey(5)


def lifecycle(sim, st):
    agents = sim.born(st.pool, st.agents, st.genomes, died, key)
    return agents, sim.grow(sim.hp, st.pool, st.agents, st.genomes, ages, key)


results = [jax.device_get(jax.jit(lambda st, s=s: lifecycle(s, st))(state)) for s in sims]
np.savez(out, **{f"{name}/{jax.tree_util.keystr(k)}": np.asarray(v) for name, r in zip(("one", "batched"), results)
                 for k, v in jax.tree_util.tree_leaves_with_path(r)})
print(json.dumps({"batches": [s.batch for s in sims], "n": n, "grew": int(np.asarray(results[0][1][2]).sum())}))

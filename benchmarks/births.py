"""What the births of one step cost: the old loop over the deaths against vectorised batches.

The step's `born` alone (gather the genes, `kind.newborn`, write the row) on founders of the
preset at `--slots` slots, with `--deaths` random slots dead, jitted with the agents donated
(as in the chunk, where the rows are written in place). Variants:

    loop     the loop that `Simulation.born` was before batching: one birth per iteration
    B=b      `Simulation.each_slot` with `run.birth_batch` b (b=1: a loop of vmaps of one)

Every variant must give the loop's agents bit for bit. Warm calls only (the first call
compiles); the variants alternate over --rounds, so a change in the machine's load hits all
alike. Prints ms per step (median) and ends with one JSON line.

    .venv/bin/python benchmarks/births.py --config configs/gpu.yaml --slots 1024 --deaths 35
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from evodevo import config  # noqa: E402
from evodevo.treeutil import row, set_row  # noqa: E402
from evodevo.world.sim import Simulation  # noqa: E402


def loop_born(sim, pool, agents, genomes, died, key):
    """`Simulation.born` as it was: a fori_loop over the deaths, one birth per iteration."""
    order = jnp.nonzero(died, size=sim.n, fill_value=0)[0]

    def one(i, agents):
        s = order[i]
        g = row(genomes, s)
        child = sim.kind.newborn(sim.strategy.gather(pool, g), g.active, g.gates,
                                 jax.random.fold_in(jax.random.fold_in(key, s), 1))
        return set_row(agents, s, child)

    return jax.lax.fori_loop(0, died.sum(), one, agents)


def batched_born(sim, b):
    def born(pool, agents, genomes, died, key):
        sim.batch = b  # read while tracing
        return sim.born(pool, agents, genomes, died, key)

    return born


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "gpu.yaml"))
    p.add_argument("--slots", type=int, default=1024)
    p.add_argument("--deaths", type=int, default=35)
    p.add_argument("--batches", default="1,8,16,32,64", help="birth_batch values to time")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=5, help="timed calls per variant and round")
    args = p.parse_args(argv)

    cfg = config.load(args.config, [f"world.n_slots={args.slots}", "run.snapshot=false"])
    sim = Simulation(cfg)
    agents, pool, genomes = sim.founders(sim.hp, jax.random.PRNGKey(1))
    died = jnp.zeros(sim.n, bool).at[
        jax.random.choice(jax.random.PRNGKey(2), sim.n, (args.deaths,), replace=False)].set(True)
    key = jax.random.PRNGKey(3)
    fns = {"loop": lambda *a: loop_born(sim, *a)}
    fns.update({f"B={b}": batched_born(sim, int(b)) for b in args.batches.split(",")})
    jitted = {name: jax.jit(f, donate_argnums=1) for name, f in fns.items()}

    reference = None
    state = {}
    for name, f in jitted.items():  # compile, and check every variant against the loop
        t0 = time.perf_counter()
        out = f(pool, jax.tree.map(jnp.copy, agents), genomes, died, key)
        jax.block_until_ready(out)
        got = jax.device_get(out)
        if reference is None:
            reference = got
        same = all(np.array_equal(a, b, equal_nan=True)
                   for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(reference)))
        print(f"{name:>6}: compiled in {time.perf_counter() - t0:.1f} s, same agents as the loop: {same}")
        if not same:
            return 1
        state[name] = out
    del agents, reference

    times = {name: [] for name in jitted}
    for _ in range(args.rounds):
        for name, f in jitted.items():
            s = state[name]
            for _ in range(args.calls):
                t0 = time.perf_counter()
                s = jax.block_until_ready(f(pool, s, genomes, died, key))
                times[name].append(time.perf_counter() - t0)
            state[name] = s
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    print(f"\n{jax.default_backend()} ({jax.device_count()} device(s)), {sim.n} slots, {args.deaths} deaths, "
          f"{sim.kind.bytes_per_slot(state['loop']):,} bytes per slot")
    for name, v in ms.items():
        print(f"{name:>6}: {v:8.2f} ms per step   ({ms['loop'] / v:.2f}x the loop)")
    print(json.dumps({"backend": jax.default_backend(), "slots": sim.n, "deaths": args.deaths,
                      "ms_per_step": {k: round(v, 3) for k, v in ms.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which form of the agents' matmul this backend runs fastest: per-agent weights or shared genes.

Every agent holds a copy of its genes' weights, so each of the model's matmuls is a batch of N
tiny ones, [S, D] @ [D, D] per agent (S = 3 tokens a step). Issue #12 asks why the loop runs at a
tenth of the world's speed; one hypothesis was that these copies are the problem, and that
agents reading shared gene weights from the pool (G genes, several carriers each) would be faster.
This measures, at the default's shapes and in one process (the forms alternate, so a change in the
machine's load hits all alike), microseconds per matmul of all N agents for:

    per_agent            x @ W[n]: each agent's own copy (what the learner does)
    per_agent_backward   dy @ W[n]^T: the same weights in the backward pass (a transposed operand)
    pre_transposed       dy @ Wt[n] with Wt = W^T stored: what a stored transpose would cost
    per_agent_bf16       x @ W[n] with W held in bfloat16, accumulated in float32 (agents.weights_dtype)
    ragged_dot           agents sorted by gene, one lax.ragged_dot over the pool's bank [G, D, D]
    gather               W = bank[gene[n]] gathered, then the per-agent batch
    all_genes            x @ every gene of the bank (one dense matmul), each agent's column picked

It ends with one JSON line; no goal.

    .venv/bin/python benchmarks/matmul_forms.py [--slots 64 --genes 32 --carried 16 --rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

D, S, MATRICES = 64, 3, 24  # d_model, tokens a step, matrices timed per call (4 layers x wq wk wv wo w1 w2)


def forms(n: int, g: int, carried: int, seed: int = 0):
    """name -> (jitted function, its arguments): each applies MATRICES matmuls of n agents."""
    rng = np.random.default_rng(seed)
    own = [jnp.asarray(rng.standard_normal((n, D, D)), jnp.float32) for _ in range(MATRICES)]
    banks = [jnp.asarray(rng.standard_normal((g, D, D)), jnp.float32) for _ in range(MATRICES)]
    x = jnp.asarray(rng.standard_normal((n, S, D)), jnp.float32)
    gene = jnp.asarray(np.sort(rng.integers(0, carried, n)), jnp.int32)  # carried genes, agents sorted by gene
    sizes = jnp.asarray(np.bincount(np.repeat(np.asarray(gene), S), minlength=g), jnp.int32)
    transposed = [jnp.swapaxes(w, 1, 2).copy() for w in own]
    return {
        "per_agent": (jax.jit(lambda x, ws: [jnp.einsum("nsi,nio->nso", x, w) for w in ws]), (x, own)),
        "per_agent_backward": (jax.jit(lambda y, ws: [jnp.einsum("nso,nio->nsi", y, w) for w in ws]), (x, own)),
        "pre_transposed": (jax.jit(lambda y, ws: [jnp.einsum("nso,noi->nsi", y, w) for w in ws]), (x, transposed)),
        "per_agent_bf16": (jax.jit(lambda x, ws: [jnp.matmul(x.astype(jnp.bfloat16), w, preferred_element_type=jnp.float32)
                                                  for w in ws]), (x, [w.astype(jnp.bfloat16) for w in own])),
        "ragged_dot": (jax.jit(lambda x, bs, sz: [jax.lax.ragged_dot(x.reshape(n * S, D), b, sz) for b in bs]),
                       (x, banks, sizes)),
        "gather": (jax.jit(lambda x, bs, gi: [jnp.einsum("nsi,nio->nso", x, b[gi]) for b in bs]), (x, banks, gene)),
        "all_genes": (jax.jit(lambda x, bs, gi: [jnp.take_along_axis(
            (x @ jnp.moveaxis(b, 0, 1).reshape(D, g * D)).reshape(n, S, g, D), gi[:, None, None, None], 2)
            for b in bs]), (x, banks, gene)),
    }


def per_matmul_us(fn, args, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / reps / MATRICES * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slots", type=int, default=64, help="agents N (the default preset's world.n_slots)")
    p.add_argument("--genes", type=int, default=32, help="genes in a bank G (genepool.layer_genes)")
    p.add_argument("--carried", type=int, default=16, help="distinct genes the agents carry (<= --genes)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds, the forms alternating (median reported)")
    p.add_argument("--reps", type=int, default=20, help="calls per form and round")
    args = p.parse_args(argv)
    if not 1 <= args.carried <= args.genes:
        p.error(f"--carried {args.carried} must be within [1, --genes {args.genes}]")
    todo = forms(args.slots, args.genes, args.carried)
    for fn, a in todo.values():  # compile
        jax.block_until_ready(fn(*a))
    times = {name: [] for name in todo}
    for _ in range(args.rounds):
        for name, (fn, a) in todo.items():
            times[name].append(per_matmul_us(fn, a, args.reps))
    us = {name: round(statistics.median(t), 1) for name, t in times.items()}
    flop = 2 * args.slots * S * D * D
    print(f"{'form':>20} {'us / matmul':>12} {'GFLOP/s':>8} {'x per_agent':>12}")
    for name, v in us.items():
        print(f"{name:>20} {v:>12.1f} {flop / v / 1e3:>8.1f} {v / us['per_agent']:>12.2f}")
    print(json.dumps({"us_per_matmul": us, "slots": args.slots, "genes": args.genes, "carried": args.carried,
                      "shape": [S, D, D], "rounds": args.rounds, "backend": jax.default_backend()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

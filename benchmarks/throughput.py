"""Throughput of the simulation in agent-steps per second (one agent-step = one slot advanced once).

`measure(cfg, chunks)` times any configuration the same way: build the Simulation, run one
warm-up chunk (compile), then `chunks` timed chunks of `run.chunk_steps` steps each
(`Simulation.run_chunk`, outputs fetched to the host as the runner does), and return the
median rate. `VARIANTS` lists the measured configurations as functions of the preset;
each is swept over the slot counts of `--slots`:

    world   the continuous world alone: random agents (no learning), deaths and respawns included
    loop    the preset as it is: act + world + learn every step (--loop-slots, default the
            preset's n_slots: the loop at N=256 takes minutes per chunk on a 2-core CPU)

The JSON line's scalar keys world_agent_steps_per_s, loop_agent_steps_per_s, ratio and
bytes_per_slot are at the preset's n_slots, measured *interleaved*: after both have
compiled, world and loop chunks alternate (--chunks of each), so a change in the
machine's load hits both alike; `ratio` is the median of the per-pair ratios. The
world-only rate of a short chunk swings 2x with other jobs on the machine, so a ratio of
rates measured minutes apart is not reliable. `by_slots` holds the sweeps over N; their
entries at the preset's N are the interleaved measurement (each configuration compiles once).

The goal: the full loop runs at least `--goal` (default 0.25) times as fast as the world
alone, i.e. `ratio` >= goal. The exit status is 1 when the goal is missed, 0 when it is met
or when world and loop are not both measured (no ratio).

What limits the loop: `model_flops_per_agent_step` (XLA's cost analysis of act + learn, per
slot), the `gflops_per_s` that rate achieves, and `peak_gflops_per_s`, a 1024x1024 float32
matmul timed between the chunks of the same run.

    .venv/bin/python benchmarks/throughput.py --config configs/default.yaml
    .venv/bin/python benchmarks/throughput.py --slots 16,64 --chunks 3 --set run.chunk_steps=100

Prints a table and ends with one JSON line. Numbers from a shared 2-core machine are noisy:
compare runs made back to back, or ratios measured in the same process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from evodevo import config  # noqa: E402
from evodevo.config import Config  # noqa: E402
from evodevo.world.sim import Simulation  # noqa: E402


def with_slots(cfg: Config, n: int) -> Config:
    return dataclasses.replace(cfg, world=dataclasses.replace(cfg.world, n_slots=n))


def world_only(cfg: Config) -> Config:
    """The preset's world with random agents: the cost of the world alone."""
    return dataclasses.replace(cfg, agents=dataclasses.replace(cfg.agents, kind="random"))


def full_loop(cfg: Config) -> Config:
    """The preset as it is: act + world + learn every step (transformer agents by default)."""
    return cfg


# name -> preset -> measured config
VARIANTS = {
    "world": world_only,
    "loop": full_loop,
}


class Timed:
    """A Simulation and its state, compiled (one warm-up chunk), ready to time chunk by chunk."""

    def __init__(self, cfg: Config):
        t0 = time.perf_counter()
        self.sim = self.make_simulation(cfg)
        self.state = self.sim.init()
        jax.block_until_ready(self.state)
        self.init_s = time.perf_counter() - t0
        self.warmup_s = self.chunk_seconds()
        self.rates = []  # agent-steps/s of every timed chunk

    def make_simulation(self, cfg: Config) -> Simulation:
        return Simulation(cfg)

    def chunk_seconds(self) -> float:
        t0 = time.perf_counter()
        self.state, out = self.sim.run_chunk(self.state)
        jax.device_get(out)
        jax.block_until_ready(self.state)
        return time.perf_counter() - t0

    def rate(self) -> float:
        self.rates.append(self.sim.cfg.run.chunk_steps * self.sim.n / self.chunk_seconds())
        return self.rates[-1]

    def row(self) -> dict:
        """The measurement so far: one row of the sweep table."""
        return {
            "n_slots": self.sim.n, "chunk_steps": self.sim.cfg.run.chunk_steps, "init_s": self.init_s,
            "warmup_s": self.warmup_s, "rates": list(self.rates), "agent_steps_per_s": statistics.median(self.rates),
            "bytes_per_slot": int(self.sim.bytes_per_slot(self.state)),
            "state_bytes_per_slot": sum(x.nbytes for x in jax.tree.leaves(self.state)) // self.sim.n,
        }


def model_flops(timed: "Timed") -> float:
    """FLOPs of one agent-step of the model: act (forward) + learn (backward, update),
    from XLA's cost analysis of the compiled pair over all slots, divided by the slots."""
    sim, state = timed.sim, timed.state
    senses = sim.senses(state, state.world, state.step, state.action)
    died, valid = jnp.zeros(sim.n, bool), jnp.ones(sim.n, bool)

    def agent_step(agents, carried, key):
        actions, agents, pending = sim.kind.act(sim.hp.agents, agents, state.world.obs, senses, key)
        return sim.kind.learn(sim.hp.agents, agents, carried, pending, senses, died, valid)[0], sim.kind.carry(pending)

    cost = jax.jit(agent_step).lower(state.agents, state.carry, state.key).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"]) / sim.n


def matmul_peak_gflops(n: int = 1024, reps: int = 10) -> float:
    """GFLOP/s of one large float32 matmul on this machine, now: the ceiling the model's rate is read against."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(reps):
        f(a).block_until_ready()
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def interleaved(cfg: Config, chunks: int) -> dict:
    """World-only and full-loop rates at the preset's N, chunks alternating after both compiled.
    Returns the per-pair ratios and each variant's sweep row."""
    world, loop = Timed(world_only(cfg)), Timed(full_loop(cfg))
    peaks = []
    for _ in range(chunks):
        world.rate()
        loop.rate()
        peaks.append(matmul_peak_gflops())
    return {"ratios": [b / a for a, b in zip(world.rates, loop.rates)], "world": world.row(), "loop": loop.row(),
            "peak_gflops_per_s": statistics.median(peaks), "timed_loop": loop}


def measure(cfg: Config, chunks: int = 5, info: dict | None = None) -> float:
    """Median agent-steps/s of `chunks` timed chunks after one warm-up chunk. Fills `info` if given."""
    timed = Timed(cfg)
    for _ in range(chunks):
        timed.rate()
    if info is not None:
        info.update(timed.row())
    return statistics.median(timed.rates)


def print_row(info: dict) -> None:
    n = info["n_slots"]
    print(f"  {n:>6} {info['chunk_steps']:>6} {info['warmup_s']:>8.1f} {info['agent_steps_per_s']:>14,.0f} "
          f"{min(info['rates']):>12,.0f} {max(info['rates']):>12,.0f} {info['agent_steps_per_s'] / n:>9,.1f} "
          f"{info['bytes_per_slot']:>10,} {info['state_bytes_per_slot']:>12,}", flush=True)


def sweep(cfg: Config, slots, chunks: int, done: dict | None = None) -> list[dict]:
    """A row per slot count; rows in `done` ({N: row}, already measured) are reused, not measured again."""
    rows = []
    for n in slots:
        info = dict((done or {}).get(n) or {})
        if not info:
            measure(with_slots(cfg, n), chunks, info)
        rows.append(info)
        print_row(info)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"), help="YAML preset")
    p.add_argument("--slots", default="16,64,256", help="comma-separated slot counts N")
    p.add_argument("--loop-slots", default=None, help="slot counts for the loop (default: the preset's n_slots)")
    p.add_argument("--chunks", type=int, default=5, help="timed chunks per measurement (median reported)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"which of {list(VARIANTS)} to measure")
    p.add_argument("--goal", type=float, default=0.25,
                   help="lowest acceptable loop/world ratio at the preset's N; exit status 1 below it")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config key (repeatable)")
    args = p.parse_args(argv)

    slots = [int(s) for s in args.slots.split(",") if s.strip()]
    cfg = config.load(args.config, ["run.progress=false", "run.snapshot=false", *args.overrides])
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    loop_slots = [int(s) for s in (args.loop_slots or str(cfg.world.n_slots)).split(",") if s.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}; choose from {list(VARIANTS)}")

    print(f"config {args.config} {' '.join(args.overrides)}; backend {jax.default_backend()}, "
          f"{os.cpu_count()} CPUs; {args.chunks} timed chunks after 1 warm-up chunk (compile)")
    n0 = cfg.world.n_slots
    pair = None
    if "world" in names and "loop" in names:
        # First, so both compile once: the sweeps reuse these rows at N = n0.
        print(f"\ninterleaved at N = {n0}: {args.chunks} world and {args.chunks} loop chunks, alternating", flush=True)
        pair = interleaved(cfg, args.chunks)
        for i, (w, lp, r) in enumerate(zip(pair["world"]["rates"], pair["loop"]["rates"], pair["ratios"])):
            print(f"  pair {i}: world {w:>10,.0f}  loop {lp:>8,.0f}  ratio {r:.4f}", flush=True)
    results = {}
    for name in names:
        print(f"\n{name}:\n  {'N':>6} {'chunk':>6} {'warmup_s':>8} {'agent-steps/s':>14} {'min':>12} {'max':>12} "
              f"{'steps/s':>9} {'agent B/slot':>10} {'state B/slot':>12}", flush=True)
        these = loop_slots if name == "loop" else slots
        results[name] = sweep(VARIANTS[name](cfg), these, args.chunks, {n0: pair[name]} if pair else None)

    by = {}
    for name, rows in results.items():
        by[f"{name}_agent_steps_per_s"] = {str(r["n_slots"]): round(r["agent_steps_per_s"], 1) for r in rows}
        by[f"{name}_bytes_per_slot"] = {str(r["n_slots"]): r["bytes_per_slot"] for r in rows}
    if "world" in results and "loop" in results:
        by["ratio"] = {k: round(v / by["world_agent_steps_per_s"][k], 4)
                       for k, v in by["loop_agent_steps_per_s"].items() if k in by["world_agent_steps_per_s"]}
    line = {}
    for name in results:
        line[f"{name}_agent_steps_per_s"] = by[f"{name}_agent_steps_per_s"].get(str(n0))
    line["ratio"] = None
    line["bytes_per_slot"] = by.get("loop_bytes_per_slot", {}).get(str(n0))
    met = None
    if pair is not None:
        ratio = statistics.median(pair["ratios"])
        met = ratio >= args.goal
        line.update(world_agent_steps_per_s=round(pair["world"]["agent_steps_per_s"], 1),
                    loop_agent_steps_per_s=round(pair["loop"]["agent_steps_per_s"], 1),
                    ratio=round(ratio, 4), bytes_per_slot=pair["loop"]["bytes_per_slot"],
                    ratio_min=round(min(pair["ratios"]), 4), ratio_max=round(max(pair["ratios"]), 4))
        print(f"\ngoal: loop/world ratio {ratio:.4f} >= {args.goal}: {'met' if met else 'MISSED'}")
        if cfg.agents.kind == "transformer":
            flops = model_flops(pair["timed_loop"])
            achieved = flops * pair["loop"]["agent_steps_per_s"] / 1e9
            line.update(model_flops_per_agent_step=round(flops), gflops_per_s=round(achieved, 2),
                        peak_gflops_per_s=round(pair["peak_gflops_per_s"], 1))
            print(f"model: {flops / 1e6:.1f} MFLOP per agent-step (act + learn); {achieved:.1f} GFLOP/s achieved "
                  f"against a {pair['peak_gflops_per_s']:.0f} GFLOP/s matmul peak ({achieved / pair['peak_gflops_per_s']:.1%})")
    line.update(goal=args.goal, goal_met=met)
    line["n_slots"] = cfg.world.n_slots
    line["by_slots"] = by
    line.update(config=args.config, overrides=args.overrides, chunk_steps=cfg.run.chunk_steps, chunks=args.chunks,
                backend=jax.default_backend(), cpus=os.cpu_count())
    print()
    print(json.dumps(line))
    return 1 if met is False else 0


if __name__ == "__main__":
    sys.exit(main())

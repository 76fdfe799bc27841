"""What each part of the default step costs: the most a speed lever that removes it could buy.

Each variant is the preset's full loop with one part of the learner's step taken out (a
subclass of `Learner` that returns zeros in its place), so its rate minus the loop's rate is
an upper bound on the gain of the lever that removes that part for free:

    loop             the preset as it is
    no_inverse       the inverse-dynamics loss (two encoder passes and their backward) is zero
    no_backward      the pullback through the act pass gives a zero gradient: what the backward costs
    two_layer_slots  agents.l_max = 2 (the preset has 4): what two layer slots cost, active or not
                     (the lever "skip inactive layer slots"; newborns have 2 active layers)
    world            random agents: the world alone

Every variant compiles first; then their chunks alternate (--chunks rounds), so a change in
the machine's load hits all alike. Prints a table of ms per step and ends with one JSON line.

    .venv/bin/python benchmarks/step_costs.py --config configs/default.yaml --chunks 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from evodevo import config  # noqa: E402
from evodevo.agents.learner import Learner  # noqa: E402
from throughput import Timed, world_only  # noqa: E402


class NoInverse(Learner):
    def _inverse(self, hp, agents, carried, pending):
        zero = jnp.zeros(self.n)
        return zero, zero, zero, jnp.zeros_like(agents.theta), None


class NoBackward(Learner):
    def _pullback(self, carried, pending, agents):
        return lambda cot: (jnp.zeros_like(agents.theta),)


def variants(cfg):
    """name -> (config, Learner subclass or None for the config's own kind)."""
    two = dataclasses.replace(cfg, agents=dataclasses.replace(cfg.agents, l_max=2, init_depth=min(2, cfg.agents.init_depth)))
    return {"loop": (cfg, None), "no_inverse": (cfg, NoInverse),
            "no_backward": (cfg, NoBackward), "two_layer_slots": (two, None), "world": (world_only(cfg), None)}


class Variant(Timed):
    def __init__(self, cfg, kind_cls):
        self.kind_cls = kind_cls
        super().__init__(cfg)

    def make_simulation(self, cfg):
        sim = super().make_simulation(cfg)
        if self.kind_cls is not None:  # before the first trace: the chunk reads sim.kind when it compiles
            sim.kind = self.kind_cls(cfg.agents, sim.world)
        return sim


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    p.add_argument("--chunks", type=int, default=3, help="timed rounds (median reported)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)
    cfg = config.load(args.config, ["run.progress=false", "run.snapshot=false", *args.overrides])
    timed = {}
    for name, (c, cls) in variants(cfg).items():
        timed[name] = Variant(c, cls)
        print(f"compiled {name} ({timed[name].warmup_s:.0f} s)", flush=True)
    for _ in range(args.chunks):
        for t in timed.values():
            t.rate()
    n, steps = cfg.world.n_slots, cfg.run.chunk_steps
    ms = {name: round(1e3 * n / statistics.median(t.rates), 2) for name, t in timed.items()}
    print(f"\n{'variant':>16} {'ms/step':>8} {'agent-steps/s':>14} {'saves':>7}")
    for name, v in ms.items():
        print(f"{name:>16} {v:>8.2f} {1e3 * n / v:>14,.0f} {1 - v / ms['loop']:>7.1%}")
    print(json.dumps({"ms_per_step": ms, "saves": {k: round(1 - v / ms["loop"], 4) for k, v in ms.items()},
                      "n_slots": n, "chunk_steps": steps, "chunks": args.chunks, "config": args.config,
                      "overrides": args.overrides, "backend": jax.default_backend()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

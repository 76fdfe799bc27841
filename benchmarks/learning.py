"""Learning agents next to random agents, same world seed, same number of agent-steps.

    python benchmarks/learning.py --config configs/default.yaml --agent-steps 300000

For each arm it runs the simulation from scratch and reports, over all lives that
ended within the budget: the number of lives, mean lifespan, and the Crafter score
(achievement success rates across lives, a life as the episode). Lives still
running at the end are not counted. Ends with one JSON line, per arm.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from tqdm import tqdm

from evodevo import config
from evodevo.metrics import crafter_score
from evodevo.world.runner import lives_from_chunk
from evodevo.world.sim import Simulation


def run_arm(cfg, agent_steps: int, label: str, last_agent_steps: int | None = None) -> dict:
    """Simulate `agent_steps` and summarise finished lives (all, or those ending in the last window)."""
    sim = Simulation(cfg)
    state = sim.init()
    steps = -(-agent_steps // sim.n)
    chunk = cfg.run.chunk_steps
    names = sim.world.achievement_names
    lives, done, t_run = [], 0, 0.0
    with tqdm(total=steps, unit="step", desc=label) as bar:
        while done < steps:
            n = min(chunk, steps - done)
            t0 = time.perf_counter()
            state, out = sim.run_chunk(state, n)
            out = jax.device_get(out)
            if done > 0:
                t_run += time.perf_counter() - t0
            lives += lives_from_chunk(out, done, names)
            done += n
            bar.update(n)
    if last_agent_steps is not None:
        lives = [life for life in lives if life["death_step"] > steps - last_agent_steps // sim.n]
    return summarise(lives, names) | {
        "agent_steps": steps * sim.n, "agent_steps_per_s": (done - min(chunk, done)) * sim.n / max(t_run, 1e-9),
    }


def summarise(lives: list[dict], names) -> dict:
    if not lives:
        return {"lives": 0, "mean_lifespan": float("nan"), "crafter_score": float("nan"), "rates": {}}
    achieved = np.array([[n in life["achievements"] for n in names] for life in lives])
    rates = 100.0 * achieved.mean(0)
    return {
        "lives": len(lives),
        "mean_lifespan": float(np.mean([life["lifespan"] for life in lives])),
        "crafter_score": crafter_score(rates),
        "rates": {n: round(float(r), 2) for n, r in zip(names, rates) if r > 0},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default.yaml")
    p.add_argument("--agent-steps", type=int, default=300_000)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    base = ["run.progress=false", "run.snapshot=false", *args.overrides]
    arms = {
        "learning": config.load(args.config, base + ["agents.kind=transformer"]),
        "random": config.load(args.config, base + ["agents.kind=random"]),
    }
    results = {name: run_arm(cfg, args.agent_steps, name) for name, cfg in arms.items()}
    print(f"{'arm':>10} {'lives':>7} {'mean_lifespan':>14} {'crafter_score':>14} {'agent-steps/s':>14}")
    for name, r in results.items():
        print(f"{name:>10} {r['lives']:>7} {r['mean_lifespan']:>14.1f} {r['crafter_score']:>14.3f} "
              f"{r['agent_steps_per_s']:>14.0f}")
    for name, r in results.items():
        print(f"{name} achievement rates (%): {r['rates']}")
    print(json.dumps({name: {k: v for k, v in r.items() if k != "rates"} for name, r in results.items()}))


if __name__ == "__main__":
    main()

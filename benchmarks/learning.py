"""Learning agents next to random agents, same world seed, same number of agent-steps.

    python benchmarks/learning.py --config configs/default.yaml --agent-steps 300000

For each arm it runs the simulation from scratch and reports, over all lives that
ended within the budget: the number of lives, mean lifespan, and the Crafter score
(achievement success rates across lives, a life as the episode). Lives still
running at the end are not counted. Ends with one JSON line, per arm.
(`benchmarks/ablations.py` runs the same comparison with more arms and windows.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablations import run_arm, summarise  # noqa: E402

from evodevo import config  # noqa: E402


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
    results = {}
    for name, cfg in arms.items():
        run = run_arm(cfg, args.agent_steps, name)
        results[name] = summarise(run["lives"], run["names"]) | {
            "agent_steps": run["steps"] * run["n_slots"], "agent_steps_per_s": run["agent_steps_per_s"]}
    print(f"{'arm':>10} {'lives':>7} {'mean_lifespan':>14} {'crafter_score':>14} {'agent-steps/s':>14}")
    for name, r in results.items():
        print(f"{name:>10} {r['lives']:>7} {r['mean_lifespan']:>14.1f} {r['crafter_score']:>14.3f} "
              f"{r['agent_steps_per_s']:>14.0f}")
    for name, r in results.items():
        print(f"{name} achievement rates (%): {r['rates']}")
    print(json.dumps({name: {k: v for k, v in r.items() if k != "rates"} for name, r in results.items()}))


if __name__ == "__main__":
    main()

"""Does learning reinforce dying? The TD error on the fatal transition against all transitions.

    python benchmarks/fatal_td.py --steps 3000                              # the default config
    python benchmarks/fatal_td.py --steps 3000 --set agents.center_reward=true

A death is terminal in the value target, so the fatal step's TD error is its reward less the value of the
state it left. With a reward below zero on average (the default's averse curiosity) that value expects more
negative reward, the error is positive, and the actor-critic raises the probability of what the agent did
just before it died. Per chunk: deaths, the mean TD error (all transitions, mean |TD error|, the fatal ones),
the share of fatal ones that are positive, the value (all, fatal) and the mean curiosity. Ends with one
JSON line of the whole run's figures. Diagnostic only: no goal, exit 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from evodevo import config  # noqa: E402
from evodevo.world.sim import Simulation  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "default.yaml"))
    ap.add_argument("--steps", type=int, default=3000, help="simulation steps (chunks of run.chunk_steps)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    cfg = config.load(args.config, ["run.progress=false", "run.snapshot=false", *args.overrides])
    sim = Simulation(cfg)
    state = sim.init()
    fatal, living, done = [], [], 0
    while done < args.steps:
        state, out = sim.run_chunk(state)
        out = jax.device_get(out)
        td, value = out["metrics"]["td_error"], out["metrics"]["value"]
        died = (out["cause"] != 0) & np.isfinite(td)  # a newborn's first step has no transition (NaN)
        live = ~died & np.isfinite(td)
        fatal.append(np.stack([td[died], value[died]]))
        living.append(np.stack([td[live], value[live]]))
        done += cfg.run.chunk_steps
        print(f"step {done:6d}: deaths {died.sum():4d}, TD error all {np.mean(td[live]):+.3f} "
              f"(|.| {np.mean(np.abs(td[live])):.3f}), fatal {np.mean(td[died]):+.3f}, P(fatal > 0) "
              f"{np.mean(td[died] > 0):.2f}; value all {np.mean(value[live]):+.2f}, fatal {np.mean(value[died]):+.2f}; "
              f"curiosity {np.nanmean(out['metrics']['curiosity']):.4f}", flush=True)
    fatal, living = np.concatenate(fatal, 1), np.concatenate(living, 1)
    print(json.dumps({"deaths": int(fatal.shape[1]), "td_fatal": float(fatal[0].mean()),
                      "p_fatal_positive": float((fatal[0] > 0).mean()), "td_living": float(living[0].mean()),
                      "abs_td_living": float(np.abs(living[0]).mean()), "value_fatal": float(fatal[1].mean()),
                      "value_living": float(living[1].mean()), "set": args.overrides}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

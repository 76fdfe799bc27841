"""How far a newborn is from water: per world of a run's first state, the Chebyshev distance
from the spawn point to the nearest water tile (the agent sees 4 tiles sideways, 3 up and down).

    python benchmarks/world_facts.py [--config configs/default.yaml] [--seed 0]

Prints the distribution and one JSON line. Thirst kills a third of the averse agents, and this
says whether water is out of their sight or only out of their habits.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def water_distance(world_map: np.ndarray, spawn: np.ndarray, water: int) -> np.ndarray:
    """[N] Chebyshev distance from each world's spawn point to its nearest water tile (inf: none)."""
    out = np.full(len(world_map), np.inf)
    for i, (m, (y, x)) in enumerate(zip(world_map, spawn)):
        wy, wx = np.nonzero(m == water)
        if len(wy):
            out[i] = np.maximum(np.abs(wy - y), np.abs(wx - x)).min()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default.yaml")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from craftax.craftax_classic.constants import BlockType

    from evodevo import config
    from evodevo.world.sim import Simulation

    cfg = config.load(args.config, [f"seed={args.seed}", "run.progress=false"])
    env = Simulation(cfg).init().world.env
    world_map = np.asarray(env.map)
    d = water_distance(world_map[:, 0] if world_map.ndim == 4 else world_map, np.asarray(env.player_position),
                       BlockType.WATER.value)
    q = {f"p{k}": float(np.percentile(d, k)) for k in (10, 25, 50, 75, 90)}
    share = {f"within_{r}": float((d <= r).mean()) for r in (3, 4, 8)}
    print(f"{len(d)} worlds: distance spawn -> water, percentiles {q}; share within 3/4/8 tiles: "
          f"{share['within_3']:.2f} / {share['within_4']:.2f} / {share['within_8']:.2f}")
    print(json.dumps({"worlds": len(d), **q, **share}))


if __name__ == "__main__":
    main()

"""Does the continuous world stay as survivable as a fresh one? Random agents, first lives vs later lives.

A newborn is respawned into the world its predecessor left (persisting mobs, mined
blocks, night). The requirement: lives born after step `--after` (default 2000) last on
average at least 0.8 x as long as the first lives (born into fresh worlds at step 0).

Random agents on the preset's world (`--slots` 64, `--steps` 6000 by default). Lives born
in (after, steps] are followed to their end (the run is extended by up to `--max-extra`
steps), so late births are not cut short by the end of the run; lives still going at the
very end are counted as censored and left out. Prints both means, the ratio and PASS/FAIL,
and ends with one JSON line.

    .venv/bin/python benchmarks/respawn_lifespan.py
    .venv/bin/python benchmarks/respawn_lifespan.py --slots 16 --steps 3000 --after 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from evodevo import config  # noqa: E402
from evodevo.world.runner import lives_from_chunk  # noqa: E402
from evodevo.world.sim import Simulation  # noqa: E402

THRESHOLD = 0.8


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"), help="YAML preset (its world is used)")
    p.add_argument("--slots", type=int, default=64, help="slots N")
    p.add_argument("--steps", type=int, default=6000, help="simulation steps (births up to here count)")
    p.add_argument("--after", type=int, default=2000, help="later lives: born after this step")
    p.add_argument("--max-extra", type=int, default=4000, help="extra steps to follow the last births to their end")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)

    cfg = config.load(args.config, ["run.progress=false", "run.snapshot=false", *args.overrides])
    cfg = dataclasses.replace(cfg, world=dataclasses.replace(cfg.world, n_slots=args.slots),
                              agents=dataclasses.replace(cfg.agents, kind="random"))
    sim = Simulation(cfg)
    names = sim.world.achievement_names
    n, chunk = sim.n, cfg.run.chunk_steps
    print(f"{args.config}: {cfg.world.env}, N={n}, random agents, max_age {cfg.world.max_age}, "
          f"spawn_clear_radius {cfg.world.spawn_clear_radius}; {args.steps} steps, later = born after {args.after}",
          flush=True)

    state = sim.init()
    lives = []
    t0 = time.perf_counter()
    limit = args.steps + args.max_extra
    while True:
        step = int(state.step)
        birth = np.asarray(state.slots.birth_step)
        ids = np.asarray(state.slots.agent_id)
        pending = (ids < n) | ((birth > args.after) & (birth <= args.steps))  # lives we still wait for
        if step >= limit or (step >= args.steps and not pending.any()):
            break
        state, out = sim.run_chunk(state, min(chunk, limit - step))
        lives += lives_from_chunk(jax.device_get(out), step, names)
    wall = time.perf_counter() - t0
    censored = int(pending.sum())

    first = [life["lifespan"] for life in lives if life["agent_id"] < n]
    later = [life["lifespan"] for life in lives if args.after < life["birth_step"] <= args.steps]
    mean_first = float(np.mean(first)) if first else float("nan")
    mean_later = float(np.mean(later)) if later else float("nan")
    ratio = mean_later / mean_first if first and later else float("nan")
    ok = bool(ratio >= THRESHOLD)
    causes = {}
    for life in lives:
        causes[life["cause"]] = causes.get(life["cause"], 0) + 1

    print(f"simulated {int(state.step)} steps in {wall:.0f} s (incl. compile); {len(lives)} lives; causes {causes}")
    print(f"first lives  (born at step 0):            n={len(first):5d}  mean lifespan {mean_first:7.1f}  "
          f"median {np.median(first) if first else float('nan'):7.1f}")
    print(f"later lives  (born in ({args.after}, {args.steps}]):  n={len(later):5d}  mean lifespan {mean_later:7.1f}  "
          f"median {np.median(later) if later else float('nan'):7.1f}")
    # Diagnosis: Craftax's day is `day_length` (300) steps and zombies spawn mostly at night; first lives are
    # all born at dawn (step 0). Later lives by the phase of the day at their birth:
    day = int(sim.world.params.day_length)
    bins = 6
    by_phase = {}
    for b in range(bins):
        lo, hi = b * day // bins, (b + 1) * day // bins
        sel = [life["lifespan"] for life in lives
               if args.after < life["birth_step"] <= args.steps and lo <= life["birth_step"] % day < hi]
        by_phase[f"{lo}-{hi}"] = (round(float(np.mean(sel)), 1) if sel else None, len(sel))
    print("later lives by birth step % day_length:  "
          + "  ".join(f"[{k}) {m} (n={c})" for k, (m, c) in by_phase.items()))
    print(f"ratio later/first = {ratio:.3f} (need >= {THRESHOLD}); censored lives left out: {censored}")
    print("PASS" if ok else "FAIL")
    print(json.dumps({
        "mean_lifespan_first": round(mean_first, 2), "mean_lifespan_later": round(mean_later, 2),
        "ratio": round(ratio, 4), "threshold": THRESHOLD, "pass": ok,
        "n_first": len(first), "n_later": len(later), "censored": censored,
        "slots": n, "steps": args.steps, "after": args.after, "simulated_steps": int(state.step),
        "causes": causes, "later_by_birth_phase": {k: m for k, (m, c) in by_phase.items()}, "config": args.config, "overrides": args.overrides,
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

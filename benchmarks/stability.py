"""Streaming stability: one immortal learning agent lives --steps steps (default 100k).

Checks that nothing becomes non-finite and that its latent next-state prediction
loss, averaged over the last --window steps, is lower than over the first window.

    python benchmarks/stability.py --config configs/default.yaml --steps 100000

Ends with one JSON line: steps, finite, loss_first, loss_last, improved, agent_steps_per_s.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from tqdm import tqdm

from evodevo import config
from evodevo.world.sim import Simulation


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default.yaml")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--window", type=int, default=10_000)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    if args.steps < 2 * args.window:
        p.error("--steps must be at least 2 x --window")

    cfg = config.load(args.config, [
        "agents.kind=transformer", "world.n_slots=1", "world.immortal=true", "run.chunk_steps=1000",
        *args.overrides,
    ])
    sim = Simulation(cfg)
    state = sim.init()
    chunk = cfg.run.chunk_steps
    losses, rewards, deaths = [], [], 0
    finite = True
    t_run, done = 0.0, 0
    with tqdm(total=args.steps, unit="step") as bar:
        while done < args.steps:
            n = min(chunk, args.steps - done)
            t0 = time.perf_counter()
            state, out = sim.run_chunk(state, n)
            out = jax.device_get(out)
            if done > 0:  # the first chunk compiles
                t_run += time.perf_counter() - t0
            loss = out["metrics"]["loss_forward"][:n, 0]
            losses.append(loss)
            rewards.append(out["metrics"]["intrinsic_reward"][:n, 0])
            deaths += int((out["cause"][:n] != 0).sum())
            finite &= bool(np.isfinite(loss).all()) and bool(np.isfinite(np.asarray(state.agents.theta)).all())
            done += n
            bar.update(n)
            bar.set_postfix(loss=f"{loss.mean():.4f}", deaths=deaths)
    losses = np.concatenate(losses)
    first, last = float(losses[: args.window].mean()), float(losses[-args.window:].mean())
    print(f"{'window':>10} {'loss_forward':>14}")
    for i in range(0, args.steps, max(args.window, args.steps // 10)):
        print(f"{i:>10} {losses[i:i + args.window].mean():>14.5f}")
    result = {
        "steps": args.steps, "finite": finite, "deaths": deaths, "loss_first": first, "loss_last": last,
        "improved": last < first, "agent_steps_per_s": (done - min(chunk, done)) / max(t_run, 1e-9),
    }
    print(json.dumps(result))
    return 0 if finite and last < first and deaths == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

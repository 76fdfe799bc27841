"""Do the agent's own parts do real work? A memory probe and the place head's error, per arm.

    python benchmarks/cognition.py --config configs/default.yaml

Arms (each one `--set` list away from the config):

    learned    agents.memory=learned        the memory's write path trained online
    frozen     agents.memory=frozen         memory tokens carried, nothing trains their write
    none       agents.memory_tokens=0       no memory (the probe's floor: it reads nothing; agents.recall=0)
    place_off  agents.place_input=false     the grid code from the agent's dead reckoning

Each arm runs `--steps` steps of one-step chunks (the first `--warmup` unrecorded) and records,
after every step and for every slot, the memory tokens and what the agent met: the steps since
its last drink, the offset from it to the last water it saw, and the steps since a hostile mob
last stood on a tile beside it (log(1 + steps) for the two counts: lives are long-tailed). The
memory probe is a ridge regression from the memory tokens to each of those quantities, on samples
where it was met more than `--horizon` steps ago (longer ago than the KV cache reaches), fitted on
the lives with even agent ids and tested on the odd ones: its test R^2 (mean over the targets)
says how much the memory holds that the cache cannot. The place error is the learn metric `place_error` (cells between
the predicted and the true next position), with the true position as an input and without.

Ends with one JSON line holding `probe_r2` {learned, frozen, none}, `place_error` {input, learned}
and the cost in agent-steps/s of each arm; exits 1 when the learned memory's R^2 is not above
both others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evodevo import config  # noqa: E402
from evodevo.world.sim import Simulation  # noqa: E402

ARMS = {
    "learned": ["agents.memory=learned"],
    "frozen": ["agents.memory=frozen"],
    "none": ["agents.memory_tokens=0", "agents.recall=0"],  # nothing to recall with
    "place_off": ["agents.place_input=false"],
}
WATER = 3  # Craftax's BlockType.WATER: the channel of the map observation's one-hot blocks
DRINK = 2  # body: health, food, drink, energy, asleep


def since(count, born, now):
    """Steps since an event, per slot: 0 where it happens `now`, -1 before its first in this life."""
    return np.where(born, -1, np.where(now, 0, np.where(count >= 0, count + 1, -1)))


class Sight:
    """Per slot, what its current life has met: steps since the last drink, the last water in view
    (world cell) and steps since then, steps since a hostile mob was beside; reset at each birth."""

    def __init__(self, n: int, rows: int, cols: int, channels: int):
        self.shape = (rows, cols, channels)
        self.agent = np.full(n, -1)
        self.drink = np.zeros(n)
        self.since_drink = np.full(n, -1)  # -1: no drink yet in this life
        self.water = np.zeros((n, 2))
        self.since_water = np.full(n, -1)  # -1: no water seen yet
        self.since_hostile = np.full(n, -1)  # -1: no hostile beside yet
        self.offsets = np.stack(np.meshgrid(np.arange(rows) - rows // 2, np.arange(cols) - cols // 2,
                                            indexing="ij"), -1).reshape(-1, 2)

    def see(self, agent_id, obs, pos, body, hostile):
        born = agent_id != self.agent
        self.agent = agent_id.copy()
        drank = body[:, DRINK] > self.drink + 1e-6
        self.drink = body[:, DRINK].copy()
        self.since_drink = since(self.since_drink, born, drank)
        self.since_hostile = since(self.since_hostile, born & ~hostile, hostile)
        rows, cols, ch = self.shape
        water = obs[:, : rows * cols * ch].reshape(len(obs), rows * cols, ch)[..., WATER] > 0
        seen = water.any(1)
        dist = np.where(water, np.abs(self.offsets).sum(-1)[None], 1 << 20)
        nearest = self.offsets[dist.argmin(1)]
        self.water = np.where(seen[:, None], pos + nearest, self.water)
        self.since_water = since(self.since_water, born & ~seen, seen)


TARGETS = ("drink", "water", "hostile")


def record(cfg, steps: int, warmup: int, horizon: int, label: str) -> dict:
    """Run one arm in one-step chunks; return its probe samples (per target: sample rows, and the
    target with the agent id as its last column) and learn metrics."""
    sim = Simulation(cfg)
    state = sim.init()
    rows, cols, ch = sim.world.spec.map_obs_shape
    sight = Sight(sim.n, rows, cols, ch)
    hostile = sim.world.neighbour_kinds.index("hostile")
    beside = jax.jit(lambda ws: sim.world.neighbours(ws)[0][:, :, hostile].any(1))  # [N] a hostile beside
    xs, place = [], []
    samples = {name: ([], []) for name in TARGETS}
    t_run, base = 0.0, 0  # base: samples recorded so far
    for t in tqdm(range(steps), desc=label, unit="step", dynamic_ncols=True):
        t0 = time.perf_counter()
        state, out = sim.run_chunk(state)
        host = jax.device_get({"mem": state.agents.mem, "obs": state.world.obs, "id": state.slots.agent_id,
                               "pos": sim.world.position(state.world), "body": sim.world.body(state.world),
                               "hostile": beside(state.world),
                               "place": out["metrics"]["place_error"][0]})
        if t > 0:
            t_run += time.perf_counter() - t0
        ids, pos = np.asarray(host["id"]), np.asarray(host["pos"])
        sight.see(ids, np.asarray(host["obs"]), pos, np.asarray(host["body"]), np.asarray(host["hostile"]))
        if t < warmup:
            continue
        place.append(np.asarray(host["place"]))
        xs.append(np.asarray(host["mem"]).reshape(sim.n, -1))
        for name, count, value in (("drink", sight.since_drink, np.log1p(sight.since_drink)[:, None]),
                                   ("water", sight.since_water, sight.water - pos),
                                   ("hostile", sight.since_hostile, np.log1p(sight.since_hostile)[:, None])):
            keep = count > horizon
            samples[name][0].append(np.flatnonzero(keep) + base)
            samples[name][1].append(np.concatenate([value[keep], ids[keep, None]], -1))
        base += sim.n
    return {"x": np.concatenate(xs), **{k: (np.concatenate(r), np.concatenate(y)) for k, (r, y) in samples.items()},
            "place_error": float(np.nanmean(np.concatenate(place))),
            "agent_steps_per_s": (steps - 1) * sim.n / max(t_run, 1e-9)}


LAMBDAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)  # ridge penalties tried (samples of one life are alike: overfitting is easy)


def ridge_r2(x_train, y_train, x_test, y_test, lam: float = 1.0) -> float:
    """Test R^2 (mean over the target's columns; against the training mean, so a constant readout
    scores 0) of a ridge regression with an unpenalised bias; 0 without features, NaN without samples
    to fit or test on."""
    if len(y_train) < 2 or len(y_test) < 2:
        return float("nan")
    if x_train.shape[1] == 0:
        return 0.0
    mu, sd, y_mu = x_train.mean(0), x_train.std(0) + 1e-6, y_train.mean(0)
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    # the bias is the training mean: penalising it (an earlier version) shrank the readout toward 0, far
    # from a target such as log(1 + steps) ~ 3.5, and scored R^2 of -2 to -17 where the features hold nothing
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y_train - y_mu))
    resid = ((b @ w + y_mu - y_test) ** 2).sum(0)
    total = ((y_test - y_mu) ** 2).sum(0)
    return float(np.mean(1.0 - resid / np.maximum(total, 1e-9)))


def probe(rec: dict) -> dict:
    """Per target: test R^2 of the memory probe, fitted on lives with even agent ids (the penalty
    chosen by a two-fold split of those lives), tested on the odd ones."""
    out = {}
    for name in TARGETS:
        rows, y = rec[name]
        target, ids = y[:, :-1], y[:, -1].astype(int)
        train, fold = ids % 2 == 0, (ids // 2) % 2 == 0
        x = rec["x"][rows]

        def cv(lam):
            a, b = train & fold, train & ~fold
            return np.nanmean([ridge_r2(x[a], target[a], x[b], target[b], lam),
                               ridge_r2(x[b], target[b], x[a], target[a], lam)])

        lam = max(LAMBDAS, key=lambda v: np.nan_to_num(cv(v), nan=-np.inf))
        out[name] = {"r2": round(ridge_r2(x[train], target[train], x[~train], target[~train], lam), 4),
                     "samples": int(len(rows)), "lives": int(len(np.unique(ids))), "lambda": lam}
    out["mean"] = round(float(np.nanmean([out[k]["r2"] for k in TARGETS])), 4)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(HERE.parent / "configs" / "default.yaml"))
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {list(ARMS)}")
    p.add_argument("--steps", type=int, default=1500, help="steps per arm (one-step chunks)")
    p.add_argument("--warmup", type=int, default=500, help="first steps not recorded")
    p.add_argument("--horizon", type=int, default=None, help="probe only what was seen longer ago (default: agents.context)")
    p.add_argument("--out", default=str(HERE.parent / "runs" / "cognition"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if any(a not in ARMS for a in arms):
        p.error(f"unknown arm in {arms}; choose from {list(ARMS)}")
    if args.warmup >= args.steps:
        p.error(f"--warmup ({args.warmup}) must be below --steps ({args.steps})")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = {}
    for arm in arms:
        # chunks of one step: a shorter step count in a longer chunk still runs the chunk's length
        cfg = config.load(args.config, ["run.progress=false", "run.snapshot=false", "run.chunk_steps=1",
                                        *args.overrides, *ARMS[arm]])
        horizon = cfg.agents.context if args.horizon is None else args.horizon
        rec = record(cfg, args.steps, args.warmup, horizon, arm)
        results[arm] = {"probe": probe(rec), "place_error": round(rec["place_error"], 4),
                        "agent_steps_per_s": round(rec["agent_steps_per_s"], 1), "horizon": horizon}
        print(f"{arm:>10}: probe R^2 {results[arm]['probe']}, place error {results[arm]['place_error']}, "
              f"{results[arm]['agent_steps_per_s']:,.0f} agent-steps/s")
        (Path(args.out) / f"{arm}.json").write_text(json.dumps(results[arm]))
        # the probe's samples, to fit other readouts offline: x, and per target its rows and values (+ agent id)
        np.savez_compressed(Path(args.out) / f"{arm}.npz", x=rec["x"].astype(np.float32),
                            **{f"{k}_{part}": v for k in TARGETS for part, v in zip(("rows", "y"), rec[k])})
    r2 = {a: results[a]["probe"]["mean"] for a in ("learned", "frozen", "none") if a in results}
    place = {"input": results.get("frozen", results.get("learned", {})).get("place_error"),
             "learned": results.get("place_off", {}).get("place_error")}
    summary = {"probe_r2": r2, "place_error": place,
               "agent_steps_per_s": {a: r["agent_steps_per_s"] for a, r in results.items()}, "arms": results}
    print(json.dumps(summary))
    others = [v for k, v in r2.items() if k != "learned"]
    if "learned" in r2 and others and not all(r2["learned"] > v for v in others):
        print(f"goal missed: the learned memory's probe R^2 {r2['learned']} is not above {others}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Do the agent's own parts do real work? A memory probe and the place head's error, per arm.

    python benchmarks/cognition.py --config configs/default.yaml

Arms (each one `--set` list away from the config):

    learned    agents.memory=learned, memory_write=input   the write, a linear recurrence on the step's observation
                                            token, trained online (RTRL); the arm the goal judges
    learned_outputs  agents.memory=learned  the write reads the memory tokens' outputs (which start from the
                                            memory itself)
    evolved    agents.memory=evolved, memory_write=input   learned's units and write, inherited and evolved, never
                                            learned in life: what the learning adds to the structure
    frozen     agents.memory=frozen         memory tokens carried, nothing trains their write
    frozen_update  + agents.memory_write=update   the frozen memory carries the layers' update alone (outputs less
                                            inputs): a bounded state, not the running sum that makes `frozen` a clock
    none       agents.memory_tokens=0       no memory (the probe reads the age alone; agents.recall=0)
    place_off  agents.place_input=false     the grid code from the agent's dead reckoning

Each arm runs `--warmup` steps in whole chunks (the arm's cost in agent-steps/s is timed there),
then records `--steps` steps one at a time: after every step and for every slot, the memory tokens
and what the agent met: the steps since its last drink, the offset from it to the last water it
saw, and the steps since a hostile mob last stood on a tile beside it (log(1 + steps) for the two
counts: lives are long-tailed). The memory probe is a ridge regression to each of those quantities
from the agent's age (what its sense of time tells: the counts grow with age) and from its age and
its memory tokens, on samples where the quantity was met more than `--horizon` steps ago (longer ago
than the KV cache reaches), fitted on the lives with even agent ids (each penalty chosen by
cross-validation over them) and tested on the odd ones. The gain, R^2 with the memory less R^2 from
age alone on the same test samples (mean over the targets), is what the memory holds of the past
beyond age and the cache; its standard error is over a bootstrap of the test lives, paired. `none`
has only its age: its gain is 0. `--saved-only` refits the probe on the samples an arm saved. The
place error is the learn metric `place_error` (cells between the predicted and the true next
position), with the true position as an input and without.

Ends with one JSON line holding `probe_r2` {learned, evolved, frozen, none} (R^2 with age and memory),
`probe_gain` (beyond age), `probe_diff` (learned's gain less each other arm's, with its standard error),
`place_error` {input, learned} and the cost in agent-steps/s of each arm; exits 1 when the learned
memory's gain is not above both the frozen memory's and none's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evodevo import config  # noqa: E402
from evodevo.world.sim import Simulation  # noqa: E402
from ablations import ADAM, MEMORY  # noqa: E402  measured on the learner and the memory token of the defaults until 2026-12-03

ARMS = {
    "learned": ["agents.memory=learned", "agents.memory_write=input"],
    "learned_outputs": ["agents.memory=learned"],
    "evolved": ["agents.memory=evolved", "agents.memory_write=input"],
    "frozen": ["agents.memory=frozen"],
    "frozen_update": ["agents.memory=frozen", "agents.memory_write=update"],
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


CHUNK = 50  # steps per compiled chunk of the warm-up; the recording compiles chunks of one step


def record(cfg, steps: int, warmup: int, horizon: int, label: str) -> dict:
    """Run one arm: `warmup` steps in whole chunks (timed: the arm's cost), then `steps` recorded one
    at a time; return its probe samples (per target: sample rows, and the target with the agent id as
    its last column) and learn metrics."""
    sim = Simulation(cfg)
    state = sim.init()
    rows, cols, ch = sim.world.spec.map_obs_shape
    sight = Sight(sim.n, rows, cols, ch)
    hostile = sim.world.neighbour_kinds.index("hostile")
    beside = jax.jit(lambda ws: sim.world.neighbours(ws)[0][:, :, hostile].any(1))  # [N] a hostile beside
    t_run, timed = 0.0, 0
    for c in tqdm(range(warmup // CHUNK), desc=f"{label} warm-up", unit="chunk", dynamic_ncols=True):
        t0 = time.perf_counter()
        state, out = sim.run_chunk(state)
        jax.block_until_ready(out)
        if c > 0:  # the first call compiles
            t_run, timed = t_run + time.perf_counter() - t0, timed + CHUNK
    xs, ages, place = [], [], []
    samples = {name: ([], []) for name in TARGETS}
    base = 0  # samples recorded so far
    for t in tqdm(range(steps), desc=label, unit="step", dynamic_ncols=True):
        state, out = sim.run_chunk(state, length=1)
        host = jax.device_get({"mem": state.agents.mem, "obs": state.world.obs, "id": state.slots.agent_id,
                               "age": state.step - state.slots.birth_step,
                               "pos": sim.world.position(state.world), "body": sim.world.body(state.world),
                               "hostile": beside(state.world),
                               "place": out["metrics"]["place_error"][0]})
        ids, pos = np.asarray(host["id"]), np.asarray(host["pos"])
        # the sight starts blind (a slot's first recorded life is seen from its first recorded step: its counts
        # start at "never", and only what it meets while recorded enters a sample)
        sight.see(ids, np.asarray(host["obs"]), pos, np.asarray(host["body"]), np.asarray(host["hostile"]))
        place.append(np.asarray(host["place"]))
        xs.append(np.asarray(host["mem"]).reshape(sim.n, -1))
        ages.append(np.asarray(host["age"]))
        for name, count, value in (("drink", sight.since_drink, np.log1p(sight.since_drink)[:, None]),
                                   ("water", sight.since_water, sight.water - pos),
                                   ("hostile", sight.since_hostile, np.log1p(sight.since_hostile)[:, None])):
            keep = count > horizon
            samples[name][0].append(np.flatnonzero(keep) + base)
            samples[name][1].append(np.concatenate([value[keep], ids[keep, None]], -1))
        base += sim.n
    return {"x": np.concatenate(xs), "age": np.concatenate(ages),
            **{k: (np.concatenate(r), np.concatenate(y)) for k, (r, y) in samples.items()},
            "place_error": float(np.nanmean(np.concatenate(place))),
            "agent_steps_per_s": timed * sim.n / t_run if timed else float("nan")}


LAMBDAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)  # ridge penalties tried (samples of one life are alike: overfitting is easy)
FOLDS = 5  # the penalty is chosen by cross-validation over the training lives, in this many groups of lives
BOOT = 200  # bootstrap resamples of the test lives (the probe's standard error)


def ridge_fit(x, y, lam: float, first: int = 0, lam_first: float = 0.0):
    """A ridge readout with an unpenalised bias, the penalty `lam` on its features but `lam_first` on the
    first `first` columns (the age features, their penalty chosen on their own): (mean, scale, weights,
    target mean) of the features standardised on x. The bias is the training mean:
    penalising it (an earlier version) shrank the readout toward 0, far from a target such as
    log(1 + steps) ~ 3.5, and scored R^2 of -2 to -17 where the features held nothing."""
    mu, sd, y_mu = x.mean(0), x.std(0) + 1e-6, y.mean(0)
    a = (x - mu) / sd
    pen = np.where(np.arange(a.shape[1]) < first, lam_first, lam)
    return mu, sd, np.linalg.solve(a.T @ a + np.diag(pen), a.T @ (y - y_mu)), y_mu


def r2(pred, y, y_mu) -> float:
    """R^2 (mean over the target's columns) against the training mean: a constant readout scores 0."""
    return float(np.mean(1.0 - ((pred - y) ** 2).sum(0) / np.maximum(((y - y_mu) ** 2).sum(0), 1e-9)))


def ridge_r2(x_train, y_train, x_test, y_test, lam: float = 1.0, first: int = 0, lam_first: float = 0.0) -> float:
    """Test R^2 of a ridge readout fitted on the training samples; NaN without samples to fit or test on."""
    if len(y_train) < 2 or len(y_test) < 2:
        return float("nan")
    mu, sd, w, y_mu = ridge_fit(x_train, y_train, lam, first, lam_first)
    return r2((x_test - mu) / sd @ w + y_mu, y_test, y_mu)


def age_code(age) -> np.ndarray:
    """Features of the agent's age alone: what its sense of time gives every step, memory or none. The
    counts the probe asks for grow with age (steps since a drink is age less the age at the drink), and a
    memory that sums its inputs grows with age too (the frozen memory's stream: a running sum of the
    layers' updates), so a memory must beat what age alone tells to hold anything of the past."""
    a = np.asarray(age, np.float64)[:, None]
    return np.concatenate([a / 100.0, np.log1p(a), np.sqrt(a) / 10.0, (a / 100.0) ** 2], -1)


AGE = 4  # columns of age_code


def probe(rec: dict, seed: int = 0) -> dict:
    """Per target, two readouts fitted on the lives with even agent ids and tested on the odd ones: from the
    agent's age alone (`r2_age`: what its sense of time tells, the floor every arm shares, and all that
    `none` has) and from its age and its memory tokens (`r2`), each ridge penalty chosen by FOLDS-fold
    cross-validation over the training lives (the age features' first, then the memory's beside them).
    `gain` = r2 - r2_age on the same test samples: what the memory holds of the past beyond age, 0 for
    `none`. Its standard error is over a bootstrap of the test lives, paired (both readouts on the same
    resampled lives); `gain_boot` is kept for `compare`."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in TARGETS:
        rows, y = rec[name]
        target, ids = y[:, :-1], y[:, -1].astype(int)
        train = ids % 2 == 0
        age = age_code(rec["age"][rows])
        x = np.concatenate([age, rec["x"][rows]], -1)
        fold = (ids // 2) % FOLDS

        def cv(cols, lam, lam_age):
            return np.nanmean([ridge_r2(cols[train & (fold != f)], target[train & (fold != f)], cols[train & (fold == f)],
                                        target[train & (fold == f)], lam, AGE, lam_age) for f in range(FOLDS)])

        def best(score):  # the penalty of the best cross-validated R^2
            return max(LAMBDAS, key=lambda v: np.nan_to_num(score(v), nan=-np.inf))

        with warnings.catch_warnings():  # a fold without samples of a rare target scores NaN, left out
            warnings.simplefilter("ignore", RuntimeWarning)
            lam_age = best(lambda v: cv(age, v, v))  # the age readout's own penalty, then the memory's beside it
            lam = best(lambda v: cv(x, v, lam_age)) if x.shape[1] > AGE else lam_age
        test_lives = np.unique(ids[~train])
        score, floor, gain_boot = float("nan"), float("nan"), np.full(BOOT, np.nan)
        if len(test_lives) >= 2 and train.sum() >= 2:
            preds = []
            for cols in (x, age):
                mu, sd, w, y_mu = ridge_fit(cols[train], target[train], lam, AGE, lam_age)
                preds.append((cols - mu) / sd @ w + y_mu)
            score, floor = (r2(q[~train], target[~train], y_mu) for q in preds)
            by_life = {i: np.flatnonzero(ids == i) for i in test_lives}
            for b in range(BOOT):
                pick = np.concatenate([by_life[i] for i in rng.choice(test_lives, len(test_lives))])
                gain_boot[b] = r2(preds[0][pick], target[pick], y_mu) - r2(preds[1][pick], target[pick], y_mu)
        out[name] = {"r2": round(score, 4), "r2_age": round(floor, 4), "gain": round(score - floor, 4),
                     "gain_se": round(float(np.nanstd(gain_boot)), 4), "samples": int(len(rows)),
                     "lives": int(len(np.unique(ids))), "test_lives": int(len(test_lives)), "lambda": lam,
                     "lambda_age": lam_age, "gain_boot": gain_boot}
    for stat in ("r2", "r2_age", "gain"):
        out[stat] = round(float(np.nanmean([out[k][stat] for k in TARGETS])), 4)
    out["gain_se"] = round(float(np.nanstd(np.nanmean([out[k]["gain_boot"] for k in TARGETS], 0))), 4)
    return out


def compare(probes: dict) -> dict:
    """The learned memory's mean gain over age less each other arm's, with the standard error of the
    difference (the arms' test lives are different lives: the two standard errors added in quadrature)."""
    return {f"learned-{a}": {"diff": round(probes["learned"]["gain"] - p["gain"], 4),
                             "se": round(float(np.hypot(probes["learned"]["gain_se"], p["gain_se"])), 4)}
            for a, p in probes.items() if a != "learned" and "learned" in probes}


def shown(p: dict) -> dict:
    """A probe's result without its bootstrap samples (for printing and the JSON)."""
    return {k: ({f: v for f, v in t.items() if f != "gain_boot"} if isinstance(t, dict) else t) for k, t in p.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(HERE.parent / "configs" / "default.yaml"))
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {list(ARMS)}")
    p.add_argument("--steps", type=int, default=1000, help="steps recorded per arm, after the warm-up")
    p.add_argument("--warmup", type=int, default=2000, help=f"steps before recording (whole chunks of {CHUNK})")
    p.add_argument("--horizon", type=int, default=None, help="probe only what was seen longer ago (default: agents.context)")
    p.add_argument("--out", default=str(HERE.parent / "runs" / "cognition"))
    p.add_argument("--saved-only", action="store_true", help="refit the probe on the samples saved in --out; run nothing")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if any(a not in ARMS for a in arms):
        p.error(f"unknown arm in {arms}; choose from {list(ARMS)}")
    if args.steps < 2 or args.warmup < 0:
        p.error(f"--steps ({args.steps}) must be at least 2 and --warmup ({args.warmup}) not negative")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results, probes = {}, {}
    for arm in arms:
        saved = Path(args.out) / f"{arm}.npz"
        if args.saved_only:  # refit the probe on the samples an earlier run saved
            if not saved.exists() or not saved.with_suffix(".json").exists():
                p.error(f"--saved-only: no saved samples of arm {arm} in {args.out} ({saved.name} and "
                        f"{saved.with_suffix('.json').name}); run the arm first, without --saved-only")
            z = np.load(saved)
            rec = {"x": z["x"], "age": z["age"], **{k: (z[f"{k}_rows"], z[f"{k}_y"]) for k in TARGETS}}
            results[arm] = json.loads(saved.with_suffix(".json").read_text())
        else:
            cfg = config.load(args.config, ["run.progress=false", "run.snapshot=false", f"run.chunk_steps={CHUNK}",
                                            *ADAM, *MEMORY, *args.overrides, *ARMS[arm]])
            horizon = cfg.agents.context if args.horizon is None else args.horizon
            rec = record(cfg, args.steps, args.warmup, horizon, arm)
            # the probe's samples, to fit other readouts offline: x, and per target its rows and values (+ agent id)
            np.savez_compressed(saved, x=rec["x"].astype(np.float32), age=rec["age"],
                                **{f"{k}_{part}": v for k in TARGETS for part, v in zip(("rows", "y"), rec[k])})
            results[arm] = {"place_error": round(rec["place_error"], 4),
                            "agent_steps_per_s": round(rec["agent_steps_per_s"], 1), "horizon": horizon}
        probes[arm] = probe(rec)
        results[arm]["probe"] = shown(probes[arm])
        print(f"{arm:>10}: probe {results[arm]['probe']}, place error {results[arm]['place_error']}, "
              f"{results[arm]['agent_steps_per_s']:,.0f} agent-steps/s (warm-up chunks)")
        saved.with_suffix(".json").write_text(json.dumps(results[arm]))
    gain = {a: results[a]["probe"]["gain"] for a in ("learned", "evolved", "frozen", "none") if a in results}
    r2 = {a: results[a]["probe"]["r2"] for a in gain}
    place = {"input": results.get("frozen", results.get("learned", {})).get("place_error"),
             "learned": results.get("place_off", {}).get("place_error")}
    summary = {"probe_r2": r2, "probe_gain": gain, "probe_diff": compare({a: probes[a] for a in gain}),
               "place_error": place, "agent_steps_per_s": {a: r["agent_steps_per_s"] for a, r in results.items()},
               "arms": results}
    print(json.dumps(summary))
    others = [v for k, v in gain.items() if k in ("frozen", "none")]
    if "learned" in gain and others and not all(gain["learned"] > v for v in others):
        print(f"goal missed: what the learned memory holds beyond age (R^2 gain {gain['learned']}) is not above "
              f"{others}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

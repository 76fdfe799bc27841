"""Ablations of evolution and development, same world seed, same number of agent-steps per arm.

    python benchmarks/ablations.py --config configs/default.yaml --agent-steps 500000

Arms (each also reachable from the CLI with the listed `--set` keys):

    full            the default config: evolution + development
    no_evolution    genepool.evolve=false   (uniform genomes, frozen pool: no selection, splits or improvement)
    no_development  agents.develop=none     (no layers grow in during life)
    random          agents.kind=random      (uniformly random actions)

For each arm: mean lifespan and Crafter score of the lives that ended in the last
--last agent-steps (default 100k) and in the first --first agent-steps (default 300k),
and, every chunk, the gene pool's living genes and layer-frequency entropy (does the pool
collapse?). Each finished arm is saved to OUT/<arm>.json (rerunning skips it unless
--fresh), the plot to OUT/ablations.png. Ends with one JSON line: per arm, mean_lifespan
and crafter_score of lives in the last window, plus the first-window figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evodevo import config  # noqa: E402
from evodevo.agents.kind import in_control  # noqa: E402
from evodevo.metrics import crafter_score  # noqa: E402
from evodevo.world.runner import lives_from_chunk  # noqa: E402
from evodevo.world.sim import Simulation  # noqa: E402

ARMS = {
    "full": [],
    "no_evolution": ["genepool.evolve=false"],
    "no_development": ["agents.develop=none"],
    "random": ["agents.kind=random"],
}


def summarise(lives: list[dict], names) -> dict:
    """Lives, mean lifespan, Crafter score (rates across lives, a life as the episode), rates in %."""
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


def pool_point(sim, state) -> dict:
    """The gene pool's state at this step (empty for agent kinds without a pool)."""
    view = sim.pool_report(state)
    if view is None:
        return {}
    banks = view["banks"]
    a = view["agents"]
    return {
        "living_genes": {k: int(b["alive"].sum()) for k, b in banks.items()},
        "entropy_layer": float(banks["layer"]["entropy"]),
        "splits": int(np.asarray(view["pool"]["splits"]).sum()),
        "discards": int(np.asarray(view["pool"]["discards"]).sum()),
        "genome_length": float(np.mean(a["length"])),
        "developmental_layers": int(np.asarray(a["developmental"]).sum()),
        "drives": {k: round(float(np.mean(w)), 4) for k, w in sim.drive_weights(state).items()},  # population mean
        "drive_genes": drive_genes(sim, banks["drive"], jax.device_get(state.pool.bank("drive").params)),
        "instinct": {k: round(float(np.mean(b)), 4) for k, b in sim.instincts(state).items()},  # population mean
        "reflex": {k: round(float(np.mean(b)), 4) for k, b in sim.reflexes(state).items()},
    }


def world_point(sim, state, out, names, control=None) -> dict:
    """What the population does and what it has made of its worlds at this step: the world history's
    means (`ContinuousWorld.history`: plants, shelter, ...), the share of each action taken over
    the chunk (`out`: a chunk's outputs, [steps, N] each) and `reactions`: per kind of tile faced
    (a zombie, a cow, water, a ripe plant: `ContinuousWorld.neighbours`), how often the agent chose
    DO in front of it (strike, eat, drink) and on how many agent-steps it faced one. With `control`
    ([steps, N] bool: the in-run control's agent-steps, agents.control_share), `reactions_by_half`: the
    same for the learners and the control apart (what learning changed in how an agent meets each kind).
    With the chunk's TD errors and scaled rewards (`out`'s "td_error" and "reward_scaled", the metrics of
    the transitions learned), `td_when_facing` (`td_by_act`) and the learners' |TD error| quantiles."""
    actions = np.asarray(out["action"]).reshape(-1)
    share = np.bincount(actions, minlength=len(names)) / max(1, actions.size)
    faced, do = np.asarray(out["faced"]).astype(np.int64), np.asarray(out["chosen"]) == names.index("do")

    def reactions(where):
        found = {}
        for k, kind in enumerate(sim.world.neighbour_kinds):
            there = ((faced >> k) & 1 == 1) & where
            found[kind] = {"do": round(float(do[there].mean()), 4) if there.any() else None, "n": int(there.sum())}
        return found

    point = {"world": {k: round(m, 3) for k, (m, _) in sim.world_history(state).items()},
             "actions": {n: round(float(v), 4) for n, v in zip(names, share)}, "reactions": reactions(True)}
    if control is not None:
        point["reactions_by_half"] = {"learners": reactions(~control), "control": reactions(control)}
    if "td_error" in out:
        td = np.asarray(out["td_error"], np.float64)
        point["td_when_facing"] = td_by_act(sim.world.neighbour_kinds, np.asarray(out["faced"]).astype(np.int64), do,
                                            td, np.asarray(out["reward_scaled"], np.float64))
        learned = np.abs(td[np.isfinite(td)])
        point["td_abs_quantiles"] = ([round(float(q), 3) for q in np.percentile(learned, [50, 90, 99, 100])]
                                     if learned.size else None)
    return point


def td_by_act(kinds, faced, do, td, reward):
    """What the actor-critic's step says about DO in front of each kind: per kind faced, over the transitions
    learned (finite TD error: the learners') whose act was DO and whose act was another, [count, sum of TD
    errors, sum of scaled rewards] (sums, so that chunks pool). td[t] and reward[t] ([steps, N]) belong to the
    transition of the act chosen at t - 1 (the chunk's first row, whose act fell in the last chunk, is left out).
    The policy step moves DO's logit there by p (1 - p) (mean TD | DO - mean TD | other) in expectation, p = P(DO):
    a TD error that is lower after DO than after the others teaches the life to strike, eat or drink less."""
    faced, do, td, reward = faced[:-1], do[:-1], td[1:], reward[1:]
    learned = np.isfinite(td)
    found = {}
    for k, kind in enumerate(kinds):
        there = ((faced >> k) & 1 == 1) & learned
        found[kind] = {name: [int(w.sum()), round(float(td[w].sum()), 3), round(float(reward[w].sum()), 3)]
                       for name, w in (("do", there & do), ("other", there & ~do))}
    return found


def by_fifth(r: dict) -> list:
    """Mean lifespan of the lives that began in each fifth of run `r` and ended before its end (a
    persistent world's bar moves: later lives are born into worlds earlier ones changed)."""
    steps = r["steps"]
    spans = [[x["lifespan"] for x in r["lives"] if k * steps / 5 <= x["birth_step"] < (k + 1) * steps / 5]
             for k in range(5)]
    return [round(float(np.mean(s)), 1) if s else None for s in spans]


def late_world(r: dict, last: int) -> dict:
    """`world_point`'s figures averaged over the chunks of the last `last` agent-steps of run `r`:
    {"shelter": ..., "room": ..., "water_in_reach": ..., "actions": {the five commonest: share},
    "do_when_facing": {kind: P(DO)}, and with an in-run control "do_when_facing_by_half": {"learners": ...,
    "control": ...}} (empty for runs saved before them; none of the last two for runs saved before each)."""
    points = [p for p in r["series"] if "world" in p and p["step"] > r["steps"] - last // r["n_slots"]]
    if not points:
        return {}
    actions = {a: float(np.mean([p["actions"][a] for p in points])) for a in points[0]["actions"]}
    late = {k: round(float(np.mean([p["world"][k] for p in points])), 2)
            for k in ("shelter", "room", "water_in_reach") if k in points[0]["world"]}  # room: runs since 2026-12-01
    late["actions"] = {a: round(v, 3) for a, v in sorted(actions.items(), key=lambda x: -x[1])[:5]}
    def pooled(reactions):  # over the window's agent-steps
        n = {kind: sum(r[kind]["n"] for r in reactions) for kind in reactions[0]}
        return {kind: round(sum(r[kind]["n"] * (r[kind]["do"] or 0.0) for r in reactions) / n[kind], 3) if n[kind]
                else None for kind in n}

    if "reactions" in points[0]:
        late["do_when_facing"] = pooled([p["reactions"] for p in points])
    if "reactions_by_half" in points[0]:
        late["do_when_facing_by_half"] = {g: pooled([p["reactions_by_half"][g] for p in points])
                                          for g in ("learners", "control")}
    if "td_when_facing" in points[0]:  # runs since 2026-12-04's sixteenth session
        late["td_when_facing"] = td_pooled([p["td_when_facing"] for p in points])
        late["td_abs_quantiles"] = [round(float(np.mean(q)), 3) for q in
                                    zip(*[p["td_abs_quantiles"] for p in points if p["td_abs_quantiles"]])]
    return late


def td_pooled(chunks: list) -> dict:
    """`td_by_act`'s sums pooled over chunks, per kind faced: how many learned transitions (n), the share whose act
    was DO (p_do), the mean TD error after DO and after the others (td_do, td_other) and the same of the scaled reward
    (reward_do, reward_other), and the expected move of DO's logit per transition, p (1 - p) (td_do - td_other)."""
    found = {}
    for kind in chunks[0]:
        (n_do, td_do, r_do), (n_other, td_other, r_other) = (np.sum([c[kind][a] for c in chunks], 0)
                                                             for a in ("do", "other"))
        if not (n_do and n_other):
            found[kind] = {"n": int(n_do + n_other)}
            continue
        p, gap = n_do / (n_do + n_other), td_do / n_do - td_other / n_other
        found[kind] = {"n": int(n_do + n_other), "p_do": round(p, 3), "td_do": round(td_do / n_do, 3),
                       "td_other": round(td_other / n_other, 3), "reward_do": round(r_do / n_do, 3),
                       "reward_other": round(r_other / n_other, 3), "do_logit_drift": round(p * (1 - p) * gap, 4)}
    return found


def drive_genes(sim, bank: dict, params) -> list[dict]:
    """Each living drive gene: its weights (DRIVES order; "instinct" too, in action order, where
    agents.instinct; "reflex", REFLEXES x neighbour kinds, flat, where agents.reflex), shrunk fitness, lives and frequency, so that what selection favoured can be
    read off a run (agents.drives=evolved)."""
    rounded = lambda x: [round(float(v), 4) for v in np.ravel(x)]  # noqa: E731
    return [{**{k: rounded(v) for k, v in sim.kind.unravel_gene["drive"](params[i]).items()},
             "fitness": round(float(bank["fitness"][i]), 4), "lives": int(bank["count"][i]),
             "freq": round(float(bank["freq"][i]), 4)}
            for i in np.flatnonzero(bank["alive"])]


def run_arm(cfg, agent_steps: int, label: str, on_chunk=None, sim=None) -> dict:
    """Simulate `agent_steps` from scratch (with `sim`, or a `Simulation(cfg)`). Returns the finished lives,
    a per-chunk series and the speed."""
    sim = Simulation(cfg) if sim is None else sim
    state = sim.init()
    steps = -(-agent_steps // sim.n)
    chunk = cfg.run.chunk_steps
    names = sim.world.achievement_names
    lives, series, done, t_run = [], [], 0, 0.0
    share = cfg.agents.control_share  # the in-run control's agent-steps (world_point), by the life each belongs to
    with tqdm(total=steps, unit="step", desc=label, dynamic_ncols=True) as bar:
        while done < steps:
            n = min(chunk, steps - done)
            t0 = time.perf_counter()
            state, out = sim.run_chunk(state, n)
            out = jax.device_get(out)
            if done > 0:  # the first chunk compiles
                t_run += time.perf_counter() - t0
            new = lives_from_chunk(out, done, names)
            lives += new
            done += n
            point = {"step": done, "lives": len(new),
                     "lifespan_mean": float(np.mean([x["lifespan"] for x in new])) if new else None}
            point.update(pool_point(sim, state))
            control = in_control(out["record"]["agent_id"][:n], share) if share else None
            taken = {k: out[k][:n] for k in ("action", "faced", "chosen")} | {
                k: out["metrics"][k][:n] for k in ("td_error", "reward_scaled") if k in out["metrics"]}
            point.update(world_point(sim, state, taken, names=sim.world.action_names,
                                     control=control))  # a short last chunk is padded
            series.append(point)
            if on_chunk is not None:
                on_chunk(point)
            bar.update(n)
            bar.set_postfix(lives=len(lives), lifespan=f"{np.mean([x['lifespan'] for x in lives[-200:]] or [0]):.0f}")
    timed = done - min(chunk, done)
    return {"lives": lives, "series": series, "n_slots": sim.n, "steps": steps, "names": list(names),
            "agent_steps_per_s": timed * sim.n / max(t_run, 1e-9)}


# The learner of the defaults until 2026-12-03, Adam alone (TD(0), no fast readout): survival.py, within_life.py and
# cognition.py pin the arms measured on it, so an arm, a documented command and a saved result keep their meaning
ADAM = ["agents.lam=0.0", "agents.obgd_step=0.0", "agents.fast_readout=0.0"]
# The memory token of the defaults until 2026-12-03 (one frozen token, measured not to pay in lifespan: survival.py)
MEMORY = ["agents.memory_tokens=1"]
BODY_ONLY = ["agents.drive_curiosity=0", "agents.drive_food=10", "agents.drive_drink=10"]  # a reward over the body alone

# The value each config key had when it was added, where its default has changed since: a result saved
# before the key existed ran with that value, not with today's default.
ADDED_AS = {"world": {"nest": "spawn"},
            # the default since 2026-12-02 (a blow that hurts, none of the learning written back); results saved
            # before a key existed ran with it off
            "agents": {"center_reward": False, "innate_prior": False, "drive_health": 0.0},
            "genepool": {"improve": "lamarckian"}}


def same_key(saved: dict, key: dict) -> bool:
    """Whether a saved result's key is `key`. A config key added since the result was saved counts as
    the same when it is at the value it was added with (its default then, `ADDED_AS`): new switches are
    added off, keeping the old behaviour, so a new key does not throw every saved result away (`--fresh`
    reruns regardless)."""
    if saved == key:
        return True
    if not (isinstance(saved, dict) and isinstance(saved.get("config"), dict) and "config" in key):
        return False
    defaults = config.to_dict(config.Config())
    defaults = {s: {**d, **ADDED_AS.get(s, {})} if isinstance(d, dict) else d for s, d in defaults.items()}
    if not set(saved["config"]) <= set(defaults):
        return False
    filled = {s: {**d, **saved["config"].get(s, {})} if isinstance(d, dict) else saved["config"].get(s, d)
              for s, d in defaults.items()}
    return {**saved, "config": filled} == key


def code_version() -> str:
    """The commit the benchmark's code is at ("+" when the work tree differs from it), or "unknown"."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        return (git("rev-parse", "--short", "HEAD") + ("+" if git("status", "--porcelain", "--untracked-files=no")
                                                        else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cached(path: Path, key: dict, fresh: bool, run) -> dict:
    """The result saved at `path` if its "key" is `key` (`same_key`; and not `fresh`), else `run()` with
    the key, saved there through a temporary file (an interrupted write leaves the last whole result).
    With `run` None, None where nothing valid is saved (a summary of what is). The key is the config alone:
    a result of older code under the same config is reused, with the commit that computed it named."""
    if path.exists() and not fresh:
        r = json.loads(path.read_text())
        if same_key(r.get("key"), key):
            made, now = r.get("code", "unknown"), code_version()
            print(f"reusing {path}" + ("" if made == now else f" (computed by code {made}, this is {now}: "
                                                             "--fresh to run it again)"))
            return r
    if run is None:
        print(f"skipping {path}: no saved result of this config")
        return None
    r = dict(run(), key=key, code=code_version())
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(r))
    tmp.replace(path)
    return r


def windows(run: dict, first: int, last: int) -> dict:
    """Summaries of the lives that ended in the first `first` and the last `last` agent-steps."""
    n, steps = run["n_slots"], run["steps"]
    early = [x for x in run["lives"] if x["death_step"] <= first // n]
    late = [x for x in run["lives"] if x["death_step"] > steps - last // n]
    return {"last": summarise(late, run["names"]), "first": summarise(early, run["names"]),
            "all": summarise(run["lives"], run["names"])}


def plot(results: dict, path: Path, last: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {arm: cycle[i % len(cycle)] for i, arm in enumerate(results)}  # one colour per arm in every panel
    ax = axes[0, 0]
    for arm, r in results.items():
        s = r["series"]
        x = [p["step"] * r["n_slots"] for p in s]
        y = [p["lifespan_mean"] if p["lifespan_mean"] is not None else np.nan for p in s]
        k = min(8, len(s))  # smooth over chunks, weighting each chunk by its lives ("same" needs k <= chunks)
        w = np.array([p["lives"] for p in s], float)
        yy = np.nan_to_num(np.array(y, float)) * w
        smooth = np.convolve(yy, np.ones(k), "same") / np.maximum(np.convolve(w, np.ones(k), "same"), 1)
        ax.plot(x, smooth, label=arm, color=colour[arm])
    ax.set_xlabel("agent-steps")
    ax.set_ylabel("mean lifespan of lives ending (steps)")
    ax.set_title("lifespan over the run")
    ax.legend()

    ax = axes[0, 1]
    names = list(results)
    spans = [results[a]["windows"]["last"]["mean_lifespan"] for a in names]
    scores = [results[a]["windows"]["last"]["crafter_score"] for a in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, spans, 0.4, label="mean lifespan (steps)", color="tab:blue")
    ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_ylabel("mean lifespan (steps)")
    ax2 = ax.twinx()
    ax2.bar(x + 0.2, scores, 0.4, label="Crafter score", color="tab:orange")
    ax2.set_ylabel("Crafter score")
    ax.set_title(f"lives ending in the last {last:,} agent-steps (blue: lifespan, orange: score)")

    ax = axes[1, 0]
    for arm, r in results.items():
        s = [p for p in r["series"] if "entropy_layer" in p]
        if s:
            ax.plot([p["step"] * r["n_slots"] for p in s], [p["entropy_layer"] for p in s], label=arm,
                    color=colour[arm])
    ax.set_xlabel("agent-steps")
    ax.set_ylabel("layer-gene frequency entropy (nats)")
    ax.set_title("does the pool collapse? frequency entropy")
    ax.legend()

    ax = axes[1, 1]
    for arm, r in results.items():
        s = [p for p in r["series"] if "living_genes" in p]
        if s:
            ax.plot([p["step"] * r["n_slots"] for p in s], [sum(p["living_genes"].values()) for p in s],
                    label=f"{arm}: living genes", color=colour[arm])
            ax.plot([p["step"] * r["n_slots"] for p in s], [p["splits"] for p in s], "--", label=f"{arm}: splits",
                    color=colour[arm])
    ax.set_xlabel("agent-steps")
    ax.set_title("living genes (all kinds) and cumulative splits")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    p.add_argument("--agent-steps", type=int, default=500_000)
    p.add_argument("--last", type=int, default=100_000, help="agent-steps at the end whose lives are compared")
    p.add_argument("--first", type=int, default=300_000, help="agent-steps at the start, reported too")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {list(ARMS)}")
    p.add_argument("--out", default=str(ROOT / "runs" / "ablations"), help="directory for per-arm JSON and the plot")
    p.add_argument("--fresh", action="store_true", help="rerun arms whose results are already in --out")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad:
        p.error(f"unknown arm {bad[0]!r}; choose from {list(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results = {}
    for arm in arms:
        overrides = ["run.progress=false", "run.snapshot=false", *args.overrides, *ARMS[arm]]
        cfg = config.load(args.config, overrides)
        key = {"config": config.to_dict(cfg), "agent_steps": args.agent_steps}
        results[arm] = cached(out / f"{arm}.json", key, args.fresh,
                              lambda: dict(run_arm(cfg, args.agent_steps, arm), set=ARMS[arm]))
    for r in results.values():
        r["windows"] = windows(r, args.first, args.last)

    plot(results, out / "ablations.png", args.last)
    print(f"\n{'arm':>15} {'lives':>6} {'lifespan':>9} {'score':>7}   first {args.first:,}: {'lives':>6} "
          f"{'lifespan':>9} {'score':>7} {'agent-steps/s':>14}")
    for arm, r in results.items():
        la, fi = r["windows"]["last"], r["windows"]["first"]
        print(f"{arm:>15} {la['lives']:>6} {la['mean_lifespan']:>9.1f} {la['crafter_score']:>7.3f}   "
              f"{'':>{len(f'first {args.first:,}:')}} {fi['lives']:>6} {fi['mean_lifespan']:>9.1f} "
              f"{fi['crafter_score']:>7.3f} {r['agent_steps_per_s']:>14.0f}")
    for arm, r in results.items():
        print(f"{arm} achievement rates, last window (%): {r['windows']['last']['rates']}")
    for arm, r in results.items():
        last_pt = [p for p in r["series"] if "entropy_layer" in p]
        if last_pt:
            p0, p1 = last_pt[0], last_pt[-1]
            print(f"{arm} pool: layer entropy {p0['entropy_layer']:.3f} -> {p1['entropy_layer']:.3f}, living genes "
                  f"{sum(p0['living_genes'].values())} -> {sum(p1['living_genes'].values())}, splits {p1['splits']}, "
                  f"discards {p1['discards']}, genome length {p1['genome_length']:.2f}")
    print(f"plot: {out / 'ablations.png'}")
    line = {arm: {"mean_lifespan": r["windows"]["last"]["mean_lifespan"],
                  "crafter_score": r["windows"]["last"]["crafter_score"],
                  "lives": r["windows"]["last"]["lives"],
                  f"first_{args.first}": {k: r["windows"]["first"][k] for k in ("lives", "mean_lifespan", "crafter_score")},
                  "agent_steps_per_s": round(r["agent_steps_per_s"], 1), "set": r["set"]}
            for arm, r in results.items()}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How far does one life's learning move an agent's policy? A diagnostic of issue #10, no goal.

    python benchmarks/within_life.py --config configs/default.yaml

The question behind it: lifetime learning ties or loses to its ablation (agents.lr ~0) in the
survival benchmark. Either the learner cannot change what an agent does within a life of ~300
steps, or it changes it and not toward living. With `learn: lowrank` a newborn's deltas have no
effect (`transformer.init_delta`: B = 0), so an agent's policy with its deltas zeroed is the policy
it was born with, given the same inputs. After `--warmup` steps, every recorded step asks each agent
to act twice on the same observation and state: with its weights as learned so far and with its
deltas zeroed (the gates keep their learned values: they are the developmental layers' openness, not
the policy). Per age bin: the mean KL(pi || pi_born) and total-variation distance between the two
policies, P(DO) under each over all states, and P(DO) under each where the agent faces a hostile mob (the striking reflex that the
survival runs showed learning wears down over generations).

Arms (each one `--set` list away from the config):

    default   the config as it is
    fast      agents.lr x 10: a learner that moves more per step, unless the update's bound holds it back
    off       agents.lr = 1e-9: a learner that does not move (a control that must show nothing)
    loose     agents.max_update x 4 (0.2): the bound on one update's norm loosened
    loose_fast  both: lr x 10 and max_update x 10
    fast3     lr and max_update x 3, the survival arm default_fast_control's learner (it lost to its in-run control)
    fast3_nohurt   fast3 without the health drive (agents.drive_health=0)
    fast3_silent   fast3 with a reward of zero (no health drive, no curiosity): what the objectives other than
                   the reward (value, forward model, inverse dynamics, place, entropy) move on their own
    fast3_silent_noaux   fast3_silent without the auxiliary objectives: the actor-critic's own movement
    fast3_bare     fast3_silent_noaux without the entropy bonus (agents.entropy=0; by default it pulls toward the
                   innate policy): only the critic's TD error moves the actor
    obgd      the actor-critic steps by ObGD (agents.obgd_step=1, needs agents.lam > 0: pass --set agents.lam=0.8),
              the other objectives by Adam as in `default`: a step sized by the TD error
    obgd_trace  obgd with the fast readout's eligibility trace (agents.fast_lam=0.8; with --set agents.fast_readout=0.2)
    obgd_bare obgd with fast3_bare's zeros (no reward, no other objective, no entropy bonus): must barely move
    obgd_kappa05, obgd_kappa01 (and _bare)   obgd with agents.obgd_kappa 0.5 and 0.1 (default 2): a step bound 4 and 20
              times looser, so a large TD error moves the policy further
    obgd_homeostatic   obgd_kappa05 with the reward over the body alone (no curiosity; food and drink weighed
              as health): the survival arm default_obgd_homeostatic_control's learner
    obgd_homeostatic_kappa2   the same at ObGD's own bound (kappa 2): below 1 a step can overshoot its TD target
    silent    the default with a reward of zero (no health drive, no curiosity): what the rest moves on its own
    noaux     the default without the auxiliary objectives (forward, inverse, place weights 0): with `--pays`,
              does the actor-critic learn faster when it need not share the update's bound with them?
    fast3_reward   fast3 with the reward and no auxiliary objectives (forward, inverse, place weights 0): what
                   the reward moves on its own

The positive control, `--pays ACTION` (for every arm of the process): the reward is 1 on a step whose action
was ACTION and 0 otherwise, in place of the drives; each bin then also holds p_paid and p_paid_born, P(ACTION)
now and at birth. A learner must raise it within a life, or it cannot learn within one anything that pays.
`--when KIND` (e.g. `--pays do --when hostile`) pays it only where the agent faced that kind of neighbour when it
acted: a contingency. Then P(DO | facing a zombie) must rise more than P(DO), or the learner learned a preference.
`--delay D` pays each act D transitions later in the same life, so the credit must reach back over the acts between,
as a forage's does: the control of eligibility traces (`obgd_trace`, agents.fast_lam, against `obgd`).

Each arm's figures are saved to `--out`/<arm>.json; the picture (`--out`/within_life.png) draws every arm
saved there (`--saved LABEL=JSON ...` draws saved arms from several runs instead, running nothing). Ends with one JSON line {arm: {age bin: {kl, tv, samples, zombie_samples, p_do, p_do_born, p_do_zombie,
p_do_zombie_born, td_abs}}} of the arms run (td_abs: the mean |TD error| of the transitions learned at that age,
how far the critic is from its own target: under darwinian inheritance a newborn's critic was never trained),
and with agents.fast_readout, token_mean_share: quartiles over lives of the share of the readout's token that is
its life's mean (`mean_share`; agents.fast_center removes it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evodevo import config  # noqa: E402
from evodevo.config import hyperparams  # noqa: E402
from evodevo.world.sim import Simulation  # noqa: E402
from ablations import ADAM, BODY_ONLY, MEMORY  # noqa: E402

ARMS = {"default": [], "fast": ["agents.lr=0.01"], "off": ["agents.lr=0.000000001"],
        "loose": ["agents.max_update=0.2"], "loose_fast": ["agents.lr=0.01", "agents.max_update=0.5"]}
FAST3 = ["agents.lr=0.003", "agents.max_update=0.15"]
SILENT = ["agents.drive_health=0", "agents.drive_curiosity=0"]  # a reward of zero
NO_AUX = ["agents.w_forward=0", "agents.w_inverse=0", "agents.w_position=0"]  # no objective but the actor-critic's
BARE = [*SILENT, *NO_AUX, "agents.entropy=0"]  # nothing but the critic's TD error moves the actor
OBGD = ["agents.obgd_step=1.0"]  # the actor-critic steps by ObGD (with --set agents.lam=0.8)
# Every arm was measured on the learner that was the default until 2026-12-03, Adam alone: pinned below --set, so an
# arm and a command mean what they meant (`--set agents.lam=0.8 --set agents.obgd_step=1 --set agents.fast_readout=0.2`:
# today's default learner): ablations.ADAM; and on the memory token of the defaults until then: ablations.MEMORY
ARMS |= {"fast3": FAST3, "fast3_nohurt": [*FAST3, "agents.drive_health=0"], "fast3_silent": [*FAST3, *SILENT],
         "fast3_silent_noaux": [*FAST3, *SILENT, *NO_AUX], "fast3_bare": [*FAST3, *BARE],
         "noaux": NO_AUX, "silent": SILENT, "obgd": OBGD, "obgd_trace": [*OBGD, "agents.fast_lam=0.8"],
         "obgd_bare": [*OBGD, *BARE], "fast3_reward": [*FAST3, *NO_AUX],
         **{f"obgd_kappa0{k}{bare}": [*OBGD, f"agents.obgd_kappa=0.{k}", *rest]
            for k in ("5", "1") for bare, rest in (("", []), ("_bare", BARE))},
         "obgd_homeostatic": [*OBGD, "agents.obgd_kappa=0.5", *BODY_ONLY], "obgd_homeostatic_kappa2": [*OBGD, *BODY_ONLY]}
BINS = (0, 25, 50, 100, 200, 300, 10**9)  # age bins, steps


def pay_for(action: int, facing: int | None = None, delay: int = 0) -> None:
    """The positive control (`--pays`): every learner's reward becomes 1 on a step whose action was `action`
    and 0 otherwise, in place of its drives (centred and scaled as any reward). A learner that cannot raise
    P(action) within a life cannot learn within one anything that pays. With `facing` (`--when`, a kind of
    neighbour) it pays only where the agent faced that kind when it acted: a contingency, which a preference
    for the action everywhere does not earn. With `delay` (`--delay`) the act is paid that many transitions
    later, in the same life (one that ends first is never paid): the credit must reach back over the acts
    between, as a forage's does. Patched before the chunk compiles."""
    from evodevo.agents import drives
    from evodevo.agents.learner import Learner

    gradient, act, learn, carry = Learner._gradient, Learner.act, Learner.learn, Learner.carry

    def marked(self, hp, agents, obs, senses, key):  # the act also notes what the agent faced
        chosen, agents, pending = act(self, hp, agents, obs, senses, key)
        faced = jnp.ones(self.n, bool) if facing is None else senses.near[jnp.arange(self.n), senses.facing, facing] > 0
        return chosen, agents, dict(pending, out=dict(pending["out"], faced=faced), owed=jnp.zeros((self.n, delay)))

    def owing(self, hp, agents, carried, pending, senses, terminal, valid):
        """What transition t pays: its own act, or (delay) the act `delay` transitions back. `owed` [N, delay]
        holds whether each of the life's last `delay` acts before t earned pay, newest first; this transition's
        is written into the act just made (`pending`, which the simulation carries on to the next transition).
        A layer grown in (a transition not learned) keeps what is owed; a new life starts owing nothing."""
        earned = ((carried["action"] == action) & carried["out"]["faced"]).astype(jnp.float32)
        if delay:  # (a newborn's first act is at age 1: the act carried into it is its predecessor's)
            owed = carried["owed"]
            pending["owed"] = jnp.where(senses.age[:, None] > 1, jnp.concatenate([earned[:, None], owed[:, :-1]], 1), 0.0)
            earned = owed[:, -1]
        return learn(self, hp, agents, dict(carried, pay=earned), pending, senses, terminal, valid)

    def paid(self, hp, agents, carried, pending, senses, terminal):
        r = carried["pay"]
        drop = lambda d: dict({k: v for k, v in d.items() if k not in ("pay", "owed")},  # noqa: E731
                              out={k: v for k, v in d["out"].items() if k != "faced"})
        carried, pending = drop(carried), drop(pending)  # (the pullback knows the act's own outputs only)
        real, drives.reward = drives.reward, lambda *a, **k: (r, jnp.zeros_like(r))
        try:
            return gradient(self, hp, agents, carried, pending, senses, terminal)
        finally:
            drives.reward = real

    Learner._gradient, Learner.learn = paid, owing
    Learner.act = marked
    Learner.carry = lambda self, pending: dict(carry(self, pending), owed=pending["owed"])


def born_theta(learner, theta):
    """One agent's trainable vector with every delta's effect removed (B factors and full-rank deltas
    zeroed), the gates kept: the policy it was born with."""
    tr = learner.unravel(theta)
    zero = jax.tree.map(lambda d: (d[0], jnp.zeros_like(d[1])) if isinstance(d, tuple) else jnp.zeros_like(d),
                        tr["delta"], is_leaf=lambda x: isinstance(x, tuple))
    return ravel_pytree(dict(tr, delta=zero))[0]


def policy_pair(sim: Simulation):
    """jitted (state, hp) -> (pi, pi_born) [N, A], age [N], faced kind [N, K], the action token [N, D] (with
    agents.fast_readout; else [N, 0]): each agent acting on the current observation with its learned weights and
    with its deltas (and fast readout) zeroed (the same key, cache, memory)."""
    learner = sim.kind

    def pair(state, hp):
        senses = sim.senses(state, state.world, state.step, state.action)
        key = jax.random.PRNGKey(0)
        born = state.agents.replace(theta=jax.vmap(lambda t: born_theta(learner, t))(state.agents.theta),
                                    fast=jax.tree.map(jnp.zeros_like, state.agents.fast))  # (agents.fast_readout)
        now, then = (learner.act(hp.agents, agents, state.world.obs, senses, key)[2]["out"]
                     for agents in (state.agents, born))
        faced = senses.near[jnp.arange(sim.n), senses.facing]
        token = now.get("fast_h", jnp.zeros((sim.n, 0)))  # the readout's token (agents.fast_readout)
        return jax.nn.softmax(now["logits"], -1), jax.nn.softmax(then["logits"], -1), senses.age, faced, token

    return jax.jit(pair)


def record(sim: Simulation, pair, hp, steps: int, warmup: int, label: str, paid: int | None = None) -> dict:
    """One arm (its hyperparameters `hp` on the shared simulation): per age bin, how far the policy moved
    (and, under `--pays`, the probability of the paid action now and at birth)."""
    do = sim.world.action_names.index("do")
    watched = do if paid is None else paid
    hostile = sim.world.neighbour_kinds.index("hostile")
    state = sim.init()
    for _ in tqdm(range(warmup // sim.cfg.run.chunk_steps), desc=f"{label} warm-up", unit="chunk", dynamic_ncols=True):
        state, _ = sim.run_chunk(state, hp=hp)
    rows, tokens, ids = [], [], []
    for _ in tqdm(range(steps), desc=f"{label} recorded", unit="step", dynamic_ncols=True):
        state, out = sim.run_chunk(state, hp=hp, length=1)
        pi, pi0, age, faced, token = jax.device_get(pair(state, hp))
        tokens.append(token)
        ids.append(np.asarray(state.slots.agent_id))
        kl = (pi * (np.log(pi + 1e-12) - np.log(pi0 + 1e-12))).sum(-1)
        tv = 0.5 * np.abs(pi - pi0).sum(-1)
        td = np.abs(np.asarray(out["metrics"]["td_error"][0]))  # the step's transition (NaN for a newborn)
        rows.append(np.stack([age, kl, tv, pi[:, do], pi0[:, do], faced[:, hostile] > 0, td, pi[:, watched],
                              pi0[:, watched]], -1))
    rows = np.concatenate(rows)
    out = {}
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        r = rows[(rows[:, 0] >= lo) & (rows[:, 0] < hi)]
        z = r[r[:, 5] > 0]
        out[f"{lo}-{hi if hi < 10**9 else ''}"] = {
            "samples": int(len(r)), "kl": float(r[:, 1].mean()) if len(r) else float("nan"),
            "tv": float(r[:, 2].mean()) if len(r) else float("nan"), "zombie_samples": int(len(z)),
            "p_do": float(r[:, 3].mean()) if len(r) else float("nan"),
            "p_do_born": float(r[:, 4].mean()) if len(r) else float("nan"),
            "p_do_zombie": float(z[:, 3].mean()) if len(z) else float("nan"),
            "p_do_zombie_born": float(z[:, 4].mean()) if len(z) else float("nan"),
            "td_abs": float(np.nanmean(r[:, 6])) if np.isfinite(r[:, 6]).any() else float("nan"),
            **({"p_paid": float(r[:, 7].mean()) if len(r) else float("nan"),
                "p_paid_born": float(r[:, 8].mean()) if len(r) else float("nan")} if paid is not None else {})}
    if tokens[0].shape[-1]:  # (agents.fast_readout) how much of the readout's token is its life's mean
        out["token_mean_share"] = mean_share(np.concatenate(tokens), np.concatenate(ids))
    return out


def mean_share(tokens, ids, least: int = 20) -> dict:
    """Per life recorded at least `least` times: |mean token|^2 / mean |token|^2, the share of the action token's
    squared norm that is the same in every state of the life (the fast readout's step in one state moves another
    state's logits by about this share of what it moves its own). Quartiles over lives (with agents.fast_input=senses,
    of what the readout reads, over the lives that met something beside them)."""
    lives = [tokens[ids == i] for i in np.unique(ids)]
    share = [(t.mean(0) ** 2).sum() / (t ** 2).sum(-1).mean() for t in lives if len(t) >= least and (t ** 2).sum() > 0]
    quartiles = np.percentile(share or [np.nan], [25, 50, 75])
    return {"lives": len(share), "quartiles": [round(float(q), 3) for q in quartiles]}


def draw(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(25, 3.8))
    for arm, bins in results.items():
        names = [b for b, v in bins.items() if v.get("samples")]  # (age bins, not token_mean_share)
        for ax, key in zip(axes, ("kl", "tv")):
            # KL's floor: the `off` control's is ~1e-9 and round-off can make it negative (a log axis)
            ax.plot(names, [max(bins[b][key], 1e-6) for b in names], "o-", label=arm)
        p = "p_paid" if all("p_paid" in bins[b] for b in names) else "p_do"  # (--pays: the paid action's)
        if all(p in bins[b] for b in names):  # (files saved before P(DO) was recorded have none)
            axes[2].plot(names, [bins[b][p] - bins[b][f"{p}_born"] for b in names], "o-", label=arm)
        if all("td_abs" in bins[b] for b in names):  # (recorded since 2026-12-02's third session)
            axes[3].plot(names, [bins[b]["td_abs"] for b in names], "o-", label=arm)
        if all("p_do_zombie" in bins[b] for b in names):  # the contingency; a gap where fewer than 10 samples
            axes[4].plot(names, [bins[b]["p_do_zombie"] - bins[b]["p_do_zombie_born"] if bins[b]["zombie_samples"] >= 10
                                 else np.nan for b in names], "o-", label=arm)
    axes[0].set(title="KL(policy now || at birth), same inputs (floor 1e-6)", xlabel="age (steps)", ylabel="nats",
                yscale="log")
    axes[1].set(title="total-variation distance", xlabel="age (steps)", ylabel="TV")
    axes[2].axhline(0.0, color="grey", lw=0.8)
    axes[2].set(title="P(DO) (--pays: the paid action) now minus at birth", xlabel="age (steps)", ylabel="probability")
    axes[3].set(title="mean |TD error| (scaled reward units)", xlabel="age (steps)", ylabel="|delta|", yscale="log")
    axes[4].axhline(0.0, color="grey", lw=0.8)
    axes[4].set(title="P(DO | facing a hostile) now - at birth (10+ samples)", xlabel="age (steps)",
                ylabel="probability")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(HERE.parent / "configs" / "default.yaml"))
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {list(ARMS)}")
    p.add_argument("--steps", type=int, default=400, help="recorded steps per arm")
    p.add_argument("--warmup", type=int, default=1000, help="steps before recording (whole chunks)")
    p.add_argument("--out", default=str(HERE.parent / "runs" / "within_life"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--pays", metavar="ACTION", help="positive control: the reward is 1 for this action (e.g. noop), "
                   "0 otherwise, in place of the drives")
    p.add_argument("--when", metavar="KIND", help="with --pays: only where the agent faced this kind of neighbour "
                   "(e.g. hostile) when it acted: a contingency")
    p.add_argument("--delay", type=int, default=0, metavar="D", help="with --pays: the act is paid D transitions "
                   "later in the same life (the credit must reach back over the acts between)")
    p.add_argument("--saved", action="append", default=[], metavar="LABEL=JSON", help="runs nothing: draws these "
                   "saved arms' figures (<arm>.json of earlier runs, under their labels) into --out/within_life.png")
    args = p.parse_args(argv)
    if args.saved:
        saved = {}
        for item in args.saved:
            label, _, path = item.partition("=")
            if not path or not Path(path).is_file():
                p.error(f"--saved {item}: expected LABEL=PATH to a saved <arm>.json")
            saved[label] = json.loads(Path(path).read_text())
        Path(args.out).mkdir(parents=True, exist_ok=True)
        draw(saved, Path(args.out) / "within_life.png")
        print(f"drew {list(saved)} into {Path(args.out) / 'within_life.png'}")
        return 0
    if (args.when is not None or args.delay) and args.pays is None:
        p.error("--when and --delay need --pays ACTION: it says what is paid")
    if args.delay < 0:
        p.error(f"--delay {args.delay}: a number of transitions, >= 0")
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if any(a not in ARMS for a in arms):
        p.error(f"unknown arm in {arms}; choose from {list(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = ["run.progress=false", "run.snapshot=false", "run.chunk_steps=50", *ADAM, *MEMORY, *args.overrides]
    sim = Simulation(config.load(args.config, base))  # the arms differ in step sizes only: one compile serves all
    paid = None
    if args.pays is not None:  # (building the Simulation compiled nothing: the patch reaches its chunk)
        names = sim.world.action_names
        if args.pays not in names:
            p.error(f"--pays {args.pays}: not an action; choose from {names}")
        paid = names.index(args.pays)
        kinds = sim.world.neighbour_kinds
        if args.when is not None and args.when not in kinds:
            p.error(f"--when {args.when}: not a kind of neighbour; choose from {kinds}")
        pay_for(paid, None if args.when is None else kinds.index(args.when), args.delay)
    if sim.cfg.agents.learn != "lowrank":
        p.error(f"needs agents.learn=lowrank (deltas that start with no effect), got {sim.cfg.agents.learn}")
    pair, results = policy_pair(sim), {}
    for arm in arms:
        hp = hyperparams(config.load(args.config, [*base, *ARMS[arm]]))
        results[arm] = record(sim, pair, hp, args.steps, args.warmup, arm, paid)
        out.joinpath(f"{arm}.json").write_text(json.dumps(results[arm]))
        for b, v in results[arm].items():
            if b == "token_mean_share":
                print(f"{arm:>8}: share of the readout's token that is its life's mean, quartiles over "
                      f"{v['lives']} lives {v['quartiles']}")
                continue
            print(f"{arm:>8} age {b:>8}: KL {v['kl']:.4f} TV {v['tv']:.4f} ({v['samples']} samples); "
                  f"P(DO) {v['p_do']:.3f} vs at birth {v['p_do_born']:.3f}; "
                  f"P(DO | facing a zombie) {v['p_do_zombie']:.2f} vs at birth {v['p_do_zombie_born']:.2f} "
                  f"({v['zombie_samples']}); |TD error| {v['td_abs']:.3f}"
                  + (f"; P({args.pays}) {v['p_paid']:.3f} vs at birth {v['p_paid_born']:.3f}" if paid is not None else ""))
    saved = {a: json.loads(out.joinpath(f"{a}.json").read_text()) for a in ARMS if out.joinpath(f"{a}.json").exists()}
    draw(saved, out / "within_life.png")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

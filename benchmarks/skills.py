"""What simple skills are worth: scripted policies against random agents, same worlds, same length.

    python benchmarks/skills.py --seeds 0 --agent-steps 500000

A scripted policy reads only what the agent itself observes (the 7x9 local view, its body and its
facing; Craftax-Classic's symbolic observation) and acts by a few rules, each a skill:

    fight   a zombie on a neighbouring tile: turn to it, then strike (a zombie has 5 health, a
            strike does 1, it hits for 2 every 5 steps: a healthy agent wins)
    flee    a zombie on a neighbouring tile: step away from it (where the way is free)
    drink   water on a neighbouring tile and drink below 9: turn to it and drink
    eat     a ripe plant or a cow on a neighbouring tile and food below 9: turn to it and strike
    spare   never strike a zombie: a strike (DO) at a zombie in front becomes NOOP (a control for
            fight, and for what a striker's strikes do besides hitting zombies)
    rest    sleep only when energy is below 3 and no zombie is in view (random agents fall
            asleep in the open, where a zombie hits for 7)

Otherwise a policy acts at random (`random+...`), repeats its last action with probability 0.75
and else acts at random (`sticky+...`: persistent random exploration), strikes (DO) with
probability 0.5 (`--lean`) and else acts at random (`striker+...`: a temperament, as an innate bias of the
policy's logits would give), strikes likewise but never moves (`sitter+...`: the striking learners'
mix, which hardly moves), idles (NOOP) with probability 0.5 and else acts at random (`idler+...`:
half the striker's moves, none of its strikes), or stands still (`still+...`). A learner's
reward pays for whatever it pays for; this says what each skill would buy in lifespan, so the
target of the learning is known: the learners must beat random agents by 1.5x (issue #10),
and a skill that alone buys less cannot be the whole answer.

Per policy and seed: mean lifespan and causes of death of the lives that end in the last 20%
of the run, and the shelter there (how many of the agent's four neighbouring tiles no zombie can
enter: plants are walls, and a policy that strikes walls its home in with them); one result file per policy and seed in --out (reused when the config matches);
ends with one JSON line {policy: {seed: lifespan}, ratio over random}.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ablations  # noqa: E402
import numpy as np  # noqa: E402
from ablations import config  # noqa: E402

BASES = ("random", "sticky", "striker", "sitter", "idler", "still")
STICKY = 0.75  # the sticky base's probability of repeating its last action
LEAN = 0.5  # default of --lean: the striker's probability of DO, the idler's of NOOP (a temperament)
SKILLS = ("fight", "flee", "drink", "eat", "rest", "spare")
POLICIES = ["random", "sticky", "striker", "idler", "still", "random+rest", "random+fight", "random+flee", "random+drink+eat",
            "random+fight+drink+eat", "random+fight+drink+eat+rest", "still+fight+drink+eat+rest"]

# Craftax-Classic's symbolic observation: a 7x9 view, 17 block channels then 4 mob channels per tile,
# then inventory (12), health/food/drink/energy (/10), facing (one-hot of LEFT..DOWN), light, sleeping.
ROWS, COLS, BLOCKS, MOBS = 7, 9, 17, 4
WATER, RIPE_PLANT = 3, 16
ZOMBIE, COW = BLOCKS + 0, BLOCKS + 1
NOOP, LEFT, RIGHT, UP, DOWN, DO, SLEEP = 0, 1, 2, 3, 4, 5, 6
MOVES = {LEFT: (0, -1), RIGHT: (0, 1), UP: (-1, 0), DOWN: (1, 0)}  # action -> (row, col) step
OPPOSITE = {LEFT: RIGHT, RIGHT: LEFT, UP: DOWN, DOWN: UP}
OBS_DIM = ROWS * COLS * (BLOCKS + MOBS) + 12 + 4 + 4 + 2


def parse(policy: str) -> tuple[str, frozenset]:
    base, *skills = policy.split("+")
    if base not in BASES or any(s not in SKILLS for s in skills):
        raise SystemExit(f"bad policy {policy!r}: a base from {BASES} and skills from {SKILLS}, joined by '+'")
    return base, frozenset(skills)


def scripted_act(base: str, skills: frozenset, lean: float = LEAN):
    """act(obs [N, OBS_DIM], prev [N] last actions (-1: none), key) -> [N] actions by the rules of
    `skills` (a later rule overrides an earlier one)."""
    import jax
    import jax.numpy as jnp

    def act(obs, prev, key):
        n = obs.shape[0]
        view = obs[:, :ROWS * COLS * (BLOCKS + MOBS)].reshape(n, ROWS, COLS, BLOCKS + MOBS)
        body = obs[:, ROWS * COLS * (BLOCKS + MOBS) + 12:][:, :4] * 10.0  # health, food, drink, energy
        facing = jnp.argmax(obs[:, -6:-2], -1) + LEFT
        r, c = ROWS // 2, COLS // 2

        def near(channel):
            """[N, 4] the channel is on the tile beside the agent in the direction of LEFT..DOWN."""
            return jnp.stack([view[:, r + dr, c + dc, channel] > 0.5 for dr, dc in MOVES.values()], -1)

        def turn_then_do(mask):
            """Strike/use the first direction in `mask` the agent faces, else turn toward one (a move
            toward an occupied or non-walkable tile only turns the agent)."""
            d = jnp.argmax(mask, -1) + LEFT
            faces = jnp.take_along_axis(mask, (facing - LEFT)[:, None], -1)[:, 0]
            return jnp.where(faces, DO, d)

        k_action, k_repeat = jax.random.split(key)
        if base != "still":
            action = jax.random.randint(k_action, (n,), 0, 17, dtype=jnp.int32)
            if base == "sitter":  # never moves: the four moves' share goes to NOOP
                action = jnp.where((action >= LEFT) & (action <= DOWN), NOOP, action)
            if base in ("striker", "sitter", "idler"):
                action = jnp.where(jax.random.uniform(k_repeat, (n,)) < lean, NOOP if base == "idler" else DO, action)
            if base == "sticky":
                action = jnp.where((jax.random.uniform(k_repeat, (n,)) < STICKY) & (prev >= 0), prev, action)
        else:
            action = jnp.full(n, NOOP, jnp.int32)
        if "rest" in skills:  # no sleep in the open; sleep when tired and no zombie in view
            zombie_in_view = view[..., ZOMBIE].max((1, 2)) > 0.5
            action = jnp.where(action == SLEEP, NOOP, action)
            action = jnp.where((body[:, 3] < 3) & ~zombie_in_view, SLEEP, action)
        # later rules override earlier ones: the most urgent comes last
        if "eat" in skills:
            food = near(RIPE_PLANT) | near(COW)
            action = jnp.where(food.any(-1) & (body[:, 1] < 9), turn_then_do(food), action)
        if "drink" in skills:
            water = near(WATER)
            action = jnp.where(water.any(-1) & (body[:, 2] < 9), turn_then_do(water), action)
        zombie = near(ZOMBIE)
        if "spare" in skills:
            faces_zombie = jnp.take_along_axis(zombie, (facing - LEFT)[:, None], -1)[:, 0]
            action = jnp.where(faces_zombie & (action == DO), NOOP, action)
        if "flee" in skills:
            away = jnp.array([OPPOSITE[a] for a in MOVES])[jnp.argmax(zombie, -1)]
            action = jnp.where(zombie.any(-1), away, action)
        if "fight" in skills:
            action = jnp.where(zombie.any(-1), turn_then_do(zombie), action)
        return action.astype(jnp.int32)

    return act


def make_sim(cfg, policy: str, lean: float = LEAN):
    """A `Simulation` of random agents whose actions come from `policy` instead."""
    from evodevo.agents.random_agent import RandomAgents
    from evodevo.world.sim import Simulation

    act = scripted_act(*parse(policy), lean)

    class Scripted(RandomAgents):
        def act(self, hp, agents, obs, senses, key):
            return act(obs, senses.prev_action, key), agents, None

    sim = Simulation(cfg)
    if sim.world.obs_dim != OBS_DIM:
        raise SystemExit(f"skills.py reads Craftax-Classic's observation ({OBS_DIM} floats); this world has "
                         f"{sim.world.obs_dim}: use a Classic config")
    sim.kind = Scripted(sim.n, sim.world.num_actions, cfg.agents.l_max)
    return sim


def picture(cfg, policies: list[str], agent_steps: int, path: Path, lean: float, shown: int = 4) -> None:
    """What each policy made of its worlds: Craftax's own view of the first `shown` agents after
    `agent_steps` agent-steps, one row per policy, titled with each agent's shelter."""
    import importlib

    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(policies), shown, figsize=(2.6 * shown, 2.6 * len(policies)), squeeze=False)
    for row, policy in zip(axes, policies):
        sim = make_sim(cfg, policy, lean)
        state = sim.init()
        for _ in range(-(-agent_steps // sim.n) // cfg.run.chunk_steps):
            state, _ = sim.run_chunk(state, cfg.run.chunk_steps)
        render = importlib.import_module(sim.world.spec.renderer).make_craftax_pixel_renderer(16)
        env = jax.tree.map(lambda x: x[:shown], state.world.env)
        views = np.asarray(jax.jit(jax.vmap(render))(env)).clip(0, 255).astype(np.uint8)
        shelter = np.asarray(sim.world.history(state.world)["shelter"])
        for s, ax in enumerate(row):
            ax.imshow(views[s][:ROWS * 16])  # the map view; the inventory strip below is left out
            ax.set_title(f"{policy}, world {s}: shelter {shelter[s]}/4", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"after {agent_steps:,} agent-steps (seed {cfg.seed}): the agent in the middle, plants are walls", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(HERE.parent / "configs" / "default.yaml"))
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated base+skill+...")
    p.add_argument("--seeds", default="0")
    p.add_argument("--agent-steps", type=int, default=500_000)
    p.add_argument("--out", default=str(HERE.parent / "runs" / "skills"))
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--lean", type=float, default=LEAN, help="the striker's probability of DO, the idler's of NOOP")
    p.add_argument("--picture", metavar="PNG", help="instead: draw the first agents' views at the end of each "
                   "policy's run (first seed), one row per policy")
    args = p.parse_args(argv)
    policies = [x.strip() for x in args.policies.split(",") if x.strip()]
    for policy in policies:
        parse(policy)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.picture:
        cfg = config.load(args.config, [f"seed={seeds[0]}", "agents.kind=random", "run.progress=false",
                                        "run.snapshot=false"])
        picture(cfg, policies, args.agent_steps, Path(args.picture), args.lean)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    table = collections.defaultdict(dict)
    for seed in seeds:
        for policy in policies:
            cfg = config.load(args.config, [f"seed={seed}", "agents.kind=random", "run.progress=false",
                                            "run.snapshot=false"])
            leaned = policy.split("+")[0] in ("striker", "sitter", "idler") and args.lean != LEAN  # a result of its own
            name = f"{policy}-lean{args.lean:g}" if leaned else policy
            key = {"config": config.to_dict(cfg), "agent_steps": args.agent_steps, "policy": policy,
                   **({"lean": args.lean} if leaned else {})}
            r = ablations.cached(out / f"{name}-s{seed}.json", key, args.fresh, lambda: ablations.run_arm(
                cfg, args.agent_steps, f"{name} s{seed}", sim=make_sim(cfg, policy, args.lean)))
            late = [x for x in r["lives"] if x["death_step"] > 0.8 * r["steps"]]
            causes = collections.Counter(x["cause"] for x in late)
            drank = sum("collect_drink" in x["achievements"] for x in late) / max(1, len(late))
            span = sum(x["lifespan"] for x in late) / max(1, len(late))
            shelter = ablations.late_world(r, args.agent_steps // 5).get("shelter", float("nan"))
            table[name][seed] = span
            print(f"seed {seed} {name:>30}: lifespan {span:6.1f} over {len(late)} lives; causes "
                  + ", ".join(f"{c} {v / len(late):.0%}" for c, v in causes.most_common(4))
                  + f"; drank {drank:.0%}; shelter {shelter:.2f} of 4 sides; by fifth of birth {ablations.by_fifth(r)}")
    ratio = {p_: {s: round(v / table["random"][s], 3) for s, v in table[p_].items()}
             for p_ in table if "random" in table}
    print(json.dumps({"lifespan": {p_: {str(s): round(v, 1) for s, v in d.items()} for p_, d in table.items()},
                      "over_random": {p_: {str(s): v for s, v in d.items()} for p_, d in ratio.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

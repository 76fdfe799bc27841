"""Background job of tests/test_agents.py: a learner alone (no world) on the BARE config (K = 0 thinking
and M = 0 memory tokens, full-weight learning), with agents.lam 0 (TD(0)) and 0.8 (TD(lambda)), the
latter also with the actor-critic stepping by ObGD (agents.obgd_step=1, `<lam>/obgd/...`, the same
compile): each static lambda path is a compile of its own (~20 s here), off the main process's critical path.

    python bare_agents.py CONFIG OUT.npz

For each lambda: the founders' weights, the weights after each of 2 updates on synthetic observations
(a first act comes before them: learning lags acting by one step) and the last forward loss, in OUT.npz
as `<lam>/theta0`, `<lam>/theta1`, `<lam>/theta2`, `<lam>/loss_forward`, `<lam>/obgd_norm` (the last
update's ObGD step norm per agent, NaN without a trace). Prints one JSON line with the
agent's token layout and trainable size, and whether any update broke an agent or moved the weights
on the first step (nothing to learn yet).
"""

import dataclasses
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from evodevo import config
from evodevo.agents.kind import Senses
from evodevo.world.craftax_world import NEIGHBOUR_KINDS
from evodevo.world.sim import Simulation

BARE = ["agents.think_tokens=0", "agents.memory_tokens=0", "agents.learn=full", "agents.develop=none",
        "run.snapshot=false"]
STEPS = 2


def run(cfg, obgd_steps=(0.0,)):
    """Per value of agents.obgd_step (a traced float: one compile serves them all), what `__doc__` lists."""
    sim = Simulation(cfg)  # builds no world state and compiles nothing by itself
    ag, n, obs_dim = sim.kind, sim.n, sim.world.obs_dim

    def senses(t):
        return Senses(age=jnp.full(n, t), pos=jnp.full((n, 2), 30) + t, prev_action=jnp.full(n, -1),
                      body=jnp.full((n, 5), 0.5), near=jnp.zeros((n, 4, len(NEIGHBOUR_KINDS))),
                      facing=jnp.zeros(n, jnp.int32))

    def observe(key):
        return (jax.random.uniform(key, (n, obs_dim)) < 0.05).astype(jnp.float32)

    @jax.jit
    def step(hp, agents, carried, valid, t, key):
        k1, k2 = jax.random.split(key)
        action, agents, pending = ag.act(hp.agents, agents, observe(k1), senses(t), k2)
        agents, broken, metrics = ag.learn(hp.agents, agents, carried, pending, senses(t), jnp.zeros(n, bool), valid)
        return agents, ag.carry(pending), broken, metrics

    results = []
    for obgd_step in obgd_steps:
        hp = sim.hp.replace(agents=dataclasses.replace(sim.hp.agents, obgd_step=obgd_step))
        agents, _, _ = sim.founders(hp, jax.random.PRNGKey(0))
        carried = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(lambda a: ag.carry(ag.act(
            hp.agents, a, observe(jax.random.PRNGKey(0)), senses(0), jax.random.PRNGKey(0))[2]), agents))
        thetas, broken_any = [np.asarray(agents.theta)], False
        for t in range(STEPS + 1):
            agents, carried, broken, metrics = step(hp, agents, carried, jnp.full(n, t > 0), t, jax.random.PRNGKey(t))
            broken_any |= bool(np.asarray(broken).any())
            thetas.append(np.asarray(agents.theta))
        moved_first = not np.array_equal(thetas[1], thetas[0])
        del thetas[1]  # the first step only acts
        layout = {"s": ag.dm.s, "action_index": ag.dm.action_index, "n_params": ag.n_params}
        results.append((thetas, np.asarray(metrics["loss_forward"]), broken_any, moved_first, layout,
                        np.asarray(metrics.get("obgd_norm", np.full(n, np.nan)))))
    return results


out = {}
report = {}
for lam, obgd_steps in ((0.0, (0.0,)), (0.8, (0.0, 1.0))):
    for obgd_step, (thetas, loss, broken, moved_first, layout, obgd_norm) in zip(
            obgd_steps, run(config.load(sys.argv[1], [*BARE, f"agents.lam={lam}"]), obgd_steps)):
        name = f"{lam}" if not obgd_step else f"{lam}/obgd"
        out.update({f"{name}/theta{i}": x for i, x in enumerate(thetas)}, **{f"{name}/loss_forward": loss,
                                                                             f"{name}/obgd_norm": obgd_norm})
        report[name] = dict(layout, broken=broken, moved_on_first_step=moved_first)
np.savez(sys.argv[2], **out)
print(json.dumps(report))

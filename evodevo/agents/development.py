"""Development: layers that grow in during life.

A trigger (`agents.develop`) picks agents: `age` every develop_age steps of age, or
`plateau` when the running average of the forward-prediction loss improved by less
than plateau_tol since the last check (checks every plateau_window steps). A
triggered agent with a free layer slot gets a layer gene (drawn by frequency among
the genes whose role fits the position) inserted at a random position with both gate
alphas at 0: tanh(0) = 0, so its function is exactly unchanged at that step, and the
gate learns to open (with a larger step, agents.dev_gate_lr). Everything per layer
shifts with it: inherited weights, trainable delta and gate, Adam moments, KV cache.
The new layer's cache starts empty (zero keys and values) and fills within T steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from evodevo.agents import transformer as tf
from evodevo.genepool import genome as gn
from evodevo.genepool import pool as gp


def triggers(ag, agents, ages):
    """([N] bool insert now, [N] new loss_ref) for living agents of `ages` (0 for newborns)."""
    a = ag.a
    room = agents.genome.length < ag.dm.l_max
    if a.develop == "age":
        return (ages > 0) & (ages % a.develop_age == 0) & room, agents.loss_ref
    if a.develop == "plateau":
        check = (ages >= a.plateau_window) & (ages % a.plateau_window == 0)
        stalled = agents.loss_ema > agents.loss_ref * (1.0 - a.plateau_tol)
        return check & stalled & room, jnp.where(check, agents.loss_ema, agents.loss_ref)
    return jnp.zeros(ages.shape, bool), agents.loss_ref


def _shift_layers(tree, p, new):
    """Insert `new` (one layer's leaves) at position p of every [L, ...] leaf of `tree`."""
    return jax.tree.map(lambda x, v: gn.shift_in(x, p, v), tree, new)


def insert_layer(ag, agent, pool: gp.GenePool, p, slot, key):
    """Insert layer gene `slot` at position `p` of one agent (no slot axis), gates closed."""
    gene = ag.layouts["layer"].unravel(gp.gather(pool.layer, slot))
    genome = gn.insert_layer(agent.genome, p, slot, pool.layer.gene_id[slot], gate=0.0, developmental=True)
    base = dict(agent.base, layers=_shift_layers(agent.base["layers"], p, gene))
    tr, m, v = (ag.unravel(x) for x in (agent.theta, agent.adam_m, agent.adam_v))
    zeros = lambda t: jax.tree.map(jnp.zeros_like, t)  # noqa: E731
    if ag.a.learn == "full":
        new_tr = dict(tr, params=dict(tr["params"], layers=_shift_layers(tr["params"]["layers"], p, gene)))
        layer_moments = lambda t: t["params"]["layers"]  # noqa: E731
        put = lambda t, x: dict(t, params=dict(t["params"], layers=x))  # noqa: E731
    else:
        fresh = tf.init_delta(key, gene, ag.a.rank)  # zero effect: B = 0
        new_tr = dict(tr, delta=dict(tr["delta"], layers=_shift_layers(tr["delta"]["layers"], p, fresh)))
        layer_moments = lambda t: t["delta"]["layers"]  # noqa: E731
        put = lambda t, x: dict(t, delta=dict(t["delta"], layers=x))  # noqa: E731
    new_tr["gates"] = gn.shift_in(tr["gates"], p, jnp.zeros(2))
    one_layer = jax.tree.map(lambda x: jnp.zeros_like(x[0]), layer_moments(m))
    moments = []
    for t in (m, v):
        t = put(t, _shift_layers(layer_moments(t), p, one_layer))
        t["gates"] = gn.shift_in(t["gates"], p, jnp.zeros(2))
        moments.append(ravel_pytree(t)[0])
    empty = jnp.zeros(agent.cache_k.shape[1:], agent.cache_k.dtype)
    return agent.replace(
        genome=genome, base=base, theta=ravel_pytree(new_tr)[0], adam_m=moments[0], adam_v=moments[1],
        cache_k=gn.shift_in(agent.cache_k, p, empty), cache_v=gn.shift_in(agent.cache_v, p, empty),
    )


def develop(ag, agents, pool: gp.GenePool, ages, key):
    """Insert a layer into every triggered agent (a loop over those agents only)."""
    if ag.a.develop == "none":
        return agents
    grow, loss_ref = triggers(ag, agents, ages)
    agents = agents.replace(loss_ref=loss_ref)
    order = jnp.nonzero(grow, size=grow.shape[0], fill_value=0)[0]
    lb = pool.layer
    weights = lb.freq if ag.g.evolve else jnp.ones_like(lb.freq)

    def one(i, agents):
        s = order[i]
        k1, k2, k3 = jax.random.split(jax.random.fold_in(key, s), 3)
        agent = jax.tree.map(lambda x: x[s], agents)
        n = agent.genome.length
        p = jax.random.randint(k1, (), 0, n + 1)
        slot = gn.pick_layer_gene(k2, lb, gp.role_at(p, n + 1), weights)
        grown = insert_layer(ag, agent, pool, p, slot, k3)
        return jax.tree.map(lambda x, y: x.at[s].set(y), agents, grown)

    return jax.lax.fori_loop(0, grow.sum(), one, agents)

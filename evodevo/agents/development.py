"""Development: layers that grow in during life (the agent's side; the gene is chosen by the pool).

A trigger (`agents.develop`) picks agents: `age` every develop_age steps of age, or
`plateau` when the running average of the forward-prediction loss improved by less
than plateau_tol since the last check (checks every plateau_window steps). A
triggered agent with a free layer slot gets the offered layer gene inserted at the
offered position with both gate alphas at 0: tanh(0) = 0, so its function is exactly
unchanged at that step, and the gate learns to open (with a larger step,
agents.dev_gate_lr). Everything per layer shifts with it: inherited weights,
trainable delta and gate, optimiser moments, KV cache. The new layer's cache starts
empty (zero keys and values) and fills within T steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from evodevo.agents import transformer as tf
from evodevo.agents.optim import optimizer
from evodevo.treeutil import insert_at


def triggers(cfg, hp, agents, ages):
    """([N] bool insert now, [N] new loss_ref) for living agents of `ages` (0 for newborns).
    `cfg` holds the static switches (develop, windows, l_max), `hp` the traced plateau_tol."""
    room = agents.active.sum(-1) < agents.active.shape[-1]
    if cfg.develop == "age":
        return (ages > 0) & (ages % cfg.develop_age == 0) & room, agents.loss_ref
    if cfg.develop == "plateau":
        check = (ages >= cfg.plateau_window) & (ages % cfg.plateau_window == 0)
        stalled = agents.loss_ema > agents.loss_ref * (1.0 - hp.plateau_tol)
        return check & stalled & room, jnp.where(check, agents.loss_ema, agents.loss_ref)
    return jnp.zeros(ages.shape, bool), agents.loss_ref


def track_loss(window: int, agents, loss, age) -> dict:
    """Running averages of the forward loss: over the first `window` (plateau_window) steps of life
    (fixed after that) and a recent one (an EMA over ~window / 4 steps)."""
    n = jnp.maximum(age - 1, 1).astype(jnp.float32)  # the first update of a life comes at age 2
    first = jnp.where(n <= window, agents.loss_first + (loss - agents.loss_first) / n, agents.loss_first)
    rate = jnp.maximum(1.0 / n, 4.0 / window)
    return {"loss_first": first, "loss_ema": agents.loss_ema + rate * (loss - agents.loss_ema)}


def _insert_in_layers(tree, p, new):
    """Insert `new` (one layer's leaves) at position p of every [L, ...] leaf of `tree`."""
    return jax.tree.map(lambda x, v: insert_at(x, p, v), tree, new)


def insert_gated_layer(learner, agent, p, gene, key):
    """Insert the layer gene `gene` (flat) at position `p` of one agent (no slot axis), gates closed."""
    layer = learner.unravel_gene["layer"](gene)
    stacked = tf.stack_layers(agent.base)
    base = tf.hold(tf.unstack_layers(dict(stacked, layer=_insert_in_layers(stacked["layer"], p, layer))),
                   learner.cfg.weights_dtype)

    def shift(flat, new_layer):
        """A trainable-shaped flat vector with a layer inserted at p (gates of the new layer: 0)."""
        tr = learner.unravel(flat)
        part = "params" if learner.cfg.learn == "full" else "delta"
        tr = dict(tr, gates=insert_at(tr["gates"], p, jnp.zeros(2)))
        tr[part] = dict(tr[part], layer=_insert_in_layers(tr[part]["layer"], p, new_layer(tr[part]["layer"])))
        return ravel_pytree(tr)[0]

    if learner.cfg.learn == "full":
        theta = shift(agent.theta, lambda _: layer)
    else:
        theta = shift(agent.theta, lambda _: tf.init_delta(key, layer, learner.cfg.rank))  # zero effect: B = 0
    # Optimiser moments of the new layer start at zero; the others move with their layers.
    zero_layer = lambda layers: jax.tree.map(lambda x: jnp.zeros_like(x[0]), layers)  # noqa: E731
    opt = optax.tree_utils.tree_map_params(optimizer(), lambda m: shift(m, zero_layer), agent.opt)
    empty = jnp.zeros(agent.cache_k.shape[1:], agent.cache_k.dtype)
    return agent.replace(
        base=base, theta=theta, opt=opt, trace=None if agent.trace is None else shift(agent.trace, zero_layer),
        active=insert_at(agent.active, p, True), developmental=insert_at(agent.developmental, p, True),
        cache_k=insert_at(agent.cache_k, p, empty), cache_v=insert_at(agent.cache_v, p, empty),
    )


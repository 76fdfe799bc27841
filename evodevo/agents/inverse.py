"""Inverse dynamics: which action led from s_t to s_{t+1} (with the RND predictor, the losses of a
transition that read s_{t+1} itself). Functions of a `learner.Learner` (its weights and switches).

`agents.inverse_input` says what the inverse head reads:
  encoder  the agent's encoder's latents of s_t and s_{t+1}, re-encoded here, both with a
           gradient: it shapes the encoder and the head; the layers get none.
  layers   s_t's normalised action token after the layers, the act's output "token": the loss's
           gradient with respect to it is a cotangent of that output, pulled back through the
           carried act with the heads' losses (one backward pass, no second forward pass), so it
           reaches the layers' deltas and gates, the encoder and the final norm. For s_{t+1}
           it reads phi0(s_{t+1}), the inherited encoder's latent of the raw next observation
           (this step's act has it), without a gradient. Not the layers' output for s_{t+1}:
           that holds a_t as an input (the previous-action embedding), so the head would
           decode its own input and its gradient into s_t would vanish.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from evodevo.agents import transformer as tf


def aux_loss(learner, hp, theta, token, agent, obs_n, obs_n1, latent1, action):
    """One agent's inverse-dynamics (+ RND predictor) loss; (loss, (cross-entropy, RND error)).
    `token`: s_t after the layers (inverse_input=layers, else unused); `latent1`: phi0(s_{t+1})."""
    enc, _, head, _ = learner.weights(theta, agent.base)
    layers = learner.cfg.inverse_input == "layers"
    phi1 = tf.encode_obs(enc, obs_n1, learner.dm) if learner.cfg.rnd or not layers else None
    if layers:
        pair = (token, jax.lax.stop_gradient(latent1))
    else:
        pair = (tf.encode_obs(enc, obs_n, learner.dm), phi1)
    logp = jax.nn.log_softmax(tf.inverse_logits(head, *pair))
    loss = -hp.w_inverse * logp[action]
    rnd_err = jnp.zeros(())
    if learner.cfg.rnd:
        target = jnp.tanh(obs_n1 @ learner.rnd_target["w1"]) @ learner.rnd_target["w2"]
        rnd_err = jnp.mean((tf.rnd_prediction(head, jax.lax.stop_gradient(phi1)) - target) ** 2)
        loss = loss + hp.w_rnd * rnd_err
    return loss, (-logp[action], rnd_err)


def gradient(learner, hp, agents, carried: dict, pending):
    """Transition t's inverse dynamics (+ RND) per slot: (loss [N], cross-entropy [N], RND error [N],
    gradient [N, P] of the weights `aux_loss` reads itself, cotangent [N, D] of the carried act's
    output "token" (inverse_input=layers; None otherwise))."""
    layers = learner.cfg.inverse_input == "layers"
    token = carried["out"]["token"] if layers else None
    grad = jax.vmap(jax.value_and_grad(functools.partial(aux_loss, learner), argnums=(1, 2) if layers else 1,
                                       has_aux=True),
                    in_axes=(None, 0, 0 if layers else None, 0, 0, 0, 0, 0))
    (loss, (ce, rnd_err)), g = grad(hp, agents.theta, token, agents, carried["obs_n"], pending["obs_n"],
                                    pending["phi_now"], carried["action"])
    g_weights, g_token = g if layers else (g, None)
    return loss, ce, rnd_err, g_weights, g_token

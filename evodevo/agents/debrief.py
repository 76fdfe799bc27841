"""The debrief (`agents.debrief`): the outcome of the last step, written into the first thinking
token of this one, where the thinking tokens after it read it before the action is chosen.

When the outcome is known. Learning lags acting by one step (`learner`): transition t is learned
after act t+1. Its outcome is known earlier, at the top of act t+1, before the forward pass:
act t+1 computes phi0(s_{t+1}) (the forward model's target, the inherited encoder's latent of the
raw observation) first, and the agent keeps from act t what it expected, `expected` = phi0(s_t)
+ pred_t (the forward model's predicted change under the chosen action), and the body it sensed.
So the debrief is an input of act t+1, as the body is, and costs no second forward pass:

    e     = phi0(s_{t+1}) - expected            the forward model's error [D] (learn's d_phi - pred)
    db    = body_{t+1} - body_t                  the change of the body [BODY]
    c     = mean(e^2)                            curiosity: the forward model's error (learn's r_fwd)
    r     = drives.reward(c, h_t, h_{t+1}) / s   transition t's reward as far as the act knows it, scaled
                                                 by the running return scale s of the last update
    token = think_1 + e W_e + [db, c, r] W_o     W_e [D, D], W_o [BODY + 2, D]: in the encoder gene

The outcome is stop-gradient (an input: the weights W_e, W_o learn, through the step's own losses)
and zero for a newborn, which has no last step. The reward leaves out what only learn computes:
the RND novelty (agents.rnd: a head pass over s_{t+1}) and the reward at death (a dying agent's
next act is never executed).

Why the first thinking token and not a token of its own: the step keeps its shape [obs,
think_1..K, mem_1..M], so the KV cache, the attention masks, the memory's positions and the
action index stay as they are and the debrief costs one [D, D] product per agent-step, not a
token through every layer. The thinking tokens after it read it through the causal mask within
a step (key position <= query position); the obs token before it does not; later steps read it
through the cache. It needs K >= 1; with K = 1 the action token is the debrief token itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evodevo.agents import transformer as tf
from evodevo.agents import drives
from evodevo.agents.kind import BODY
from evodevo.agents.normalize import RewardScale

WEIGHTS = ("w_debrief", "w_debrief_err")  # the debrief's tensors in the encoder gene
SCALARS = len(BODY) + 2  # the body's change, curiosity, the reward


def init(key, dm: tf.Dims) -> dict:
    """A founder's debrief embedding, at the scale of the other senses' projections."""
    ke, ko = jax.random.split(key)
    return {"w_debrief_err": tf._dense(ke, dm.d, dm.d, 0.3), "w_debrief": tf._dense(ko, SCALARS, dm.d, 0.3)}


def encoder_with_debrief(init_encoder, dm: tf.Dims):
    """The encoder gene's init with the debrief's tensors added."""
    return lambda key: dict(init_encoder(key), **init(jax.random.fold_in(key, 8), dm))


def expectation(phi, pred):
    """[..., D] what act t expects phi0(s_{t+1}) to be: phi0(s_t) + the predicted change."""
    return jax.lax.stop_gradient(phi + pred)


def outcome(expected, phi, body, body_next, w, scale: RewardScale, newborn, threat=None, young=None, center=False,
            danger=None):
    """[N, D + SCALARS] the outcome of the last step (see the module doc) for every slot: `expected`
    [N, D] its `expectation`, `phi` [N, D] phi0 of this observation, `body`/`body_next` [N, BODY]
    the body then and now, `w` [N, DRIVES] the reward's weights, `scale` the agents' reward scale,
    `newborn` [N] (no last step: zeros), `threat` [N] a hostile mob in view now (`Senses.threat`), `young` [N]
    the agent still young (agents.play_age), `center` the reward centered (agents.center_reward), `danger` ([N]
    then, [N] now) the health left in the hostile mobs near it (`Senses.danger`)."""
    err = phi - expected
    curiosity = jnp.mean(err ** 2, -1)
    reward, _ = drives.reward(w, curiosity, body, body_next, jnp.zeros_like(curiosity), threat, young, danger)
    r_s = scale.scale(reward, center)  # elementwise over slots
    o = jnp.concatenate([err, body_next - body, curiosity[:, None], r_s[:, None]], -1)
    return jax.lax.stop_gradient(jnp.where(newborn[:, None], 0.0, o))


def embed(enc: tf.Eff, o):
    """[D] one agent's debrief, added to its first thinking token's input."""
    d = o.shape[-1] - SCALARS
    return enc.mm(o[:d], "w_debrief_err") + enc.mm(o[d:], "w_debrief")

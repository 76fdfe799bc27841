"""Memory that learns, online (`agents.memory: learned`): the M memory tokens as diagonal linear
recurrent units whose sensitivities are carried forward (real-time recurrent learning, exact for a
diagonal recurrence and cheap; Zucchet et al. 2023, "Online learning of long-range dependencies").

The write, after the layers of act t (i indexes the memory tokens, j and k the stream's dimensions):

    x_t = LN(h_t)                                   h_t: what the write reads (agents.memory_write), stop-gradient
    u_t = x_t W                                     W [D, D] the write's weights
    m_t = lambda * m_{t-1} + (1 - lambda) * u_t     lambda = sigmoid(nu), nu [M, D]: one rate per unit

What the write reads, `agents.memory_write`: `outputs`, the memory tokens' outputs after the layers,
which see the whole step but whose stream starts from m_{t-1} + mem_emb (so the write partly rewrites
the memory it came from, a dependence the sensitivities leave out); `update`, those outputs less their
inputs (what the layers wrote this step, without the stream it started from); or `input`, the step's observation
token as it enters the layers (the observation's latent with the last action, time, place and body),
the same for every unit: a linear recurrence on what the agent senses, as in a state-space layer,
whose sensitivities are then exact.

m_t (+ mem_emb) is the memory input of act t+1, read before its action is chosen: every token of
the step attends to the memory tokens (`transformer.Dims.read_memory`), whose outputs h_{t+1}, the
next write's input, see the whole step. (Causally the memory tokens come after the action token,
which could read them only a step later, through the stop-gradient cache.) (1 - lambda)
makes m an exponential average of u: the memory stays as large as one write, however long its
time scale (without it a unit with lambda -> 1 would grow as 1 / (1 - lambda) and swamp the stream).

The sensitivities (`Sensitivity`) follow the recurrence. The recurrence is diagonal, so dm_t[i, j]
depends on W[:, j] and nu[i, j] only, and the sensitivities are small: [M, D, D] and [M, D],
updated at every act (`step`, by way of `next_memory`):

    E_t[i, k, j] = dm_t[i, j] / dW[k, j]  = lambda E_{t-1}[i, k, j] + (1 - lambda) x_t[i, k]
    n_t[i, j]    = dm_t[i, j] / dnu[i, j] = lambda n_{t-1}[i, j] + lambda (1 - lambda) (m_{t-1} - u_t)[i, j]

Which sensitivity meets which cotangent (learning lags acting by one step): act t reads m_{t-1}
through `read`, whose value is m_{t-1} and whose derivative with respect to (W, nu) is (E_{t-1},
n_{t-1}), the sensitivities of that very memory. So the act's VJP keeps (E_{t-1}, n_{t-1}) among
its residuals, carried to the next step with the rest of it; when transition t is learned (after
act t+1), the one pullback of the heads' cotangents through act t gives the write's gradient
dL_t/dm_{t-1} . (E_{t-1}, n_{t-1}) beside every other weight's. Act t+1 has by then moved the
agent's own sensitivities on to (E_{t+1}, n_{t+1}); those are never paired with act t.

What is approximated (with memory_write=outputs): h_t is taken as given (stop-gradient): its dependence
on W and nu through the memory the layers read at earlier steps is dropped, as is every other weight's
gradient through the memory across steps (as through the KV cache). The recurrence itself is exact; its
sensitivities accumulate under the weights of the steps they were computed at (online RTRL).
The write's weights are part of the encoder gene, which holds the memory embeddings too, learned as
its delta like every other tensor (a rank-r delta on W with learn=lowrank). Not a per-life vector
beside the gates: a write is then inherited, evolved and, under lamarckian improvement, handed on,
by the pool's machinery as it is.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evodevo.agents import transformer as tf

WRITE = ("mem_w", "mem_nu")  # the write's tensors in the encoder gene
TIME_SCALES = (2.0, 128.0)  # a founder's units: 1 / (1 - lambda) log-uniform over these steps


@struct.dataclass
class Sensitivity:
    """d m / d(write) of the memory an agent holds (no slot axis; [N, ...] in the agents)."""

    w: jax.Array  # [M, D, D] E[i, k, j] = dm[i, j] / dW[k, j]
    nu: jax.Array  # [M, D] dm[i, j] / dnu[i, j]

    @classmethod
    def zeros(cls, m: int, d: int) -> "Sensitivity":
        return cls(w=jnp.zeros((m, d, d)), nu=jnp.zeros((m, d)))


def init_write(key, dm: tf.Dims) -> dict:
    """A founder's write: W ~ N(0, 1/D) (u has the scale of x), time scales log-uniform."""
    kw, kn = jax.random.split(key)
    tau = jnp.exp(jax.random.uniform(kn, (dm.m, dm.d), minval=math.log(TIME_SCALES[0]),
                                     maxval=math.log(TIME_SCALES[1])))
    return {"mem_w": tf._dense(kw, dm.d, dm.d), "mem_nu": jnp.log(tau - 1.0)}  # sigmoid(nu) = 1 - 1/tau


def encoder_with_write(init_encoder, dm: tf.Dims):
    """The encoder gene's init with the write's tensors added."""
    return lambda key: dict(init_encoder(key), **init_write(jax.random.fold_in(key, 7), dm))


def step(w, nu, m, sens: Sensitivity | None, h):
    """One write (see the module doc): (m_t, its sensitivities) from m_{t-1}, theirs and h_t [M, D]; without
    sensitivities to carry (agents.memory=evolved: a write that never learns), (m_t, None)."""
    lam = jax.nn.sigmoid(nu)
    x = tf.layer_norm(h)
    u = x @ w
    m_next = lam * m + (1.0 - lam) * u
    if sens is None:
        return m_next, None
    e = lam[:, None, :] * sens.w + (1.0 - lam)[:, None, :] * x[:, :, None]
    n = lam * sens.nu + lam * (1.0 - lam) * (m - u)
    return m_next, Sensitivity(w=e, nu=n)


def next_memory(kind: str, enc: tf.Eff, m, sens, h):
    """(memory, sensitivities) that act t hands to act t+1 from h_t, what the write reads (the memory
    tokens' outputs, or with memory_write=input the step's observation token), by agents.memory (`kind`):
    learned, `step` under the agent's effective write weights; evolved, the same recurrence under its
    inherited write, no sensitivities (nothing reaches the write in life: learned's control, the units
    without the learning); frozen, h_t itself: an untrained recurrent state. With memory_write=outputs a
    running sum (h_t starts from h_{t-1} + mem_emb, so it grows with age and a readout finds the age in it;
    benchmarks/cognition.py); with memory_write=update
    the layers' update alone (outputs less inputs), bounded. State, not outputs: no gradient flows through it."""
    if kind == "frozen":
        return jax.lax.stop_gradient(h), sens
    w, nu = jax.lax.stop_gradient((enc["mem_w"], enc["mem_nu"]))
    return step(w, nu, m, sens, jax.lax.stop_gradient(h))


def forget(rows, m, sens):
    """(memory [N, M, D], sensitivities) with `rows` ([N] bool; None: none) set back to a newborn's (zeros): the
    in-run control of memory (agents.control=memory), whose lives carry nothing from one act to the next."""
    if rows is None:
        return m, sens
    return jax.tree.map(lambda x: jnp.where(rows.reshape((-1,) + (1,) * (x.ndim - 1)), 0.0, x), (m, sens))


def read(w, nu, m, sens: Sensitivity):
    """The memory an act reads: the value of m, the derivative with respect to (w, nu) of the
    carried sensitivities (w - stop_gradient(w) is exactly 0 but carries w's tangent)."""
    dw, dnu = w - jax.lax.stop_gradient(w), nu - jax.lax.stop_gradient(nu)
    return m + jnp.einsum("ikj,kj->ij", sens.w, dw) + sens.nu * dnu


def coordinates(learn: str, positions: dict, names: tuple = WRITE) -> np.ndarray:
    """Indices of the encoder's tensors `names` (the write's weights, unless told), or their deltas
    (learn=lowrank), in the flat trainable vector; `positions` the trainable tree of flat indices
    (`treeutil.flat_positions`)."""
    enc = positions["params" if learn == "full" else "delta"]["encoder"]
    return np.sort(np.concatenate([np.ravel(x) for k, v in enc.items() if k in names for x in jax.tree.leaves(v)]))


# Recall (agents.recall = k > 0): a job for the memory. A next-step loss alone asks nothing of it that the
# observation and the KV cache do not already hold (the probe of benchmarks/cognition.py found no memory
# holding anything of the past beyond the cache). So a head reads the memory tokens' outputs after the
# layers and predicts the latent of the observation k steps ago (phi0: the inherited encoder's, fixed in
# life), reconstruction as in MERLIN (Wayne et al. 2018, "Unsupervised predictive memory in a
# goal-directed agent"). Its gradient reaches the layers and, with a learned write, the write through the
# read (`read`); the frozen memory's layers learn to carry it as well. The latents of the last k steps are
# kept in a ring (`AgentState.past`).
RECALL = ("w_recall",)


def encoder_with_recall(init_encoder, dm: tf.Dims):
    """The encoder gene's init with the recall head's weights added."""
    return lambda key: dict(init_encoder(key), w_recall=tf._dense(jax.random.fold_in(key, 11), dm.d, dm.d, 0.1))


def recall(enc: tf.Eff, tokens, past, age, lag: int) -> dict:
    """The act's recall outputs: the prediction of phi0(s_{t-lag}) from the memory tokens' outputs
    `tokens` [M, D], its target from the ring `past` [lag, D] (written at age - lag; stop-gradient)
    and whether there is one (age >= lag)."""
    pred = enc.mm(tf.layer_norm(tokens).mean(0), "w_recall")
    return {"recall": pred, "recall_target": jax.lax.stop_gradient(past[age % lag]),
            "recall_seen": (age >= lag).astype(jnp.float32)}


def remember(past, phi, age):
    """The ring with this step's latent written where the step `lag` later will read it."""
    return past.at[age % past.shape[0]].set(phi)


def recall_loss(out):
    """[N] mean squared error of the recall, 0 before there is anything to recall."""
    return out["recall_seen"] * jnp.mean((out["recall"] - out["recall_target"]) ** 2, -1)

"""The fast readout (agents.fast_readout): per-life linear policy and value weights on the action token.

Why: the positive control of benchmarks/within_life.py (`--pays noop`: a reward of 1 for one action) showed
the network's own learner too slow and too noisy for a life of ~300 steps. Adam moves every coordinate
about one step size whatever its gradient, so the policy drifts with the noise of every objective while a
rewarded action takes ~200 steps to show. These weights start at zero at birth (a newborn acts as its
genes say) and follow the TD error alone, scaled by the token's squared norm (normalised LMS): one
transition with TD error `delta` moves the chosen action's logit by about `step * delta * (1 - pi)`. The
inherited network supplies the features; the life learns what to do with them.

Centred (agents.fast_center): within a life ~80% of the token's squared norm is its life mean (median over
lives, benchmarks/within_life.py's token_mean_share), so a step taken in one state moves every other state's
logits ~80% as far: the readout should learn what to do everywhere far faster than what to do where. Centred,
it reads the token less its life's running mean, and the "+1" of the normalisation becomes a bias feature of
its own (what to do everywhere, at 1 / (|x|^2 + 1) of the step). Measured within a life, it changed nothing:
the policy moves as far and toward the same actions (docs/experiments.md), so it is off.

Eligibility traces (agents.fast_lam): TD(0) credits an act only through the critic's value of the next state,
and a forage pays many steps after the choices that led to it. With lambda > 0 the step follows a trace of the
normalised gradients, e <- gamma lambda e + grad / (|x|^2 + 1), so a TD error credits the acts of the last few
steps at once. The step is normalised as NLMS normalises TD(0)'s: by e_v . x_t, how far it moves V(s_t), where
that exceeds 1, so V(s_t) moves at most step * delta, as far as TD(0)'s step would. Only bounding it at the TD
target (ObGD's bound, exact here as the readout is linear) was measured unstable: the tokens of a life are ~80%
collinear, so e_v . x_t reaches ~0.8 / (1 - gamma lambda) ~ 4, the value moved ~0.9 delta a step and oscillated
(|TD error| 2-3 against 0.03-0.09 at TD(0), docs/experiments.md). At lambda 0 it is the TD(0) step.

What it reads (agents.fast_input, `reads`): the action token, or the senses the reflex reads (`senses`: which kind of
tile lies on each side and which kind it faces, 5K zeros and ones), or those and what lies further off (`view`), or
only the kind it faces (`facing`: the senses' sides share their weights between states that face the kind and states
that do not, and the readout on them lowered DO where a kind is faced while its step there taught DO up). A step
on the token moves every state's logits ~80% as far; a step on the senses moves only the states that share what lies
beside the agent, and none where nothing does: a reflex the life tunes around the one it inherited. It learns a
contingency paid at once that the token readout does not; under the default's reward (a blow hurts) its learners, on
the senses or the view, in one life or along a lineage, fought fewer zombies and lived 8-11 steps less than their
in-run controls: one-step credit pays a step away from a zombie at once and a strike only at the kill
(docs/experiments.md, fourteenth session).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from evodevo import treeutil
from evodevo.agents.normalize import Welford


@struct.dataclass
class Readout:
    w_pi: jax.Array  # [A, D] added to the policy's logits: w_pi @ h
    w_v: jax.Array  # [D] added to the value: w_v . h
    # centred (agents.fast_center; None otherwise): the biases and the life's running mean of the token
    b_pi: jax.Array | None = None  # [A]
    b_v: jax.Array | None = None  # []
    mean: Welford | None = None
    # the eligibility trace of each weight above (w_pi, w_v and, centred, b_pi, b_v), in normalised gradients
    trace: dict | None = None

    @classmethod
    def zeros(cls, num_actions: int, d: int, center: bool = False) -> "Readout":
        weights = dict(w_pi=jnp.zeros((num_actions, d)), w_v=jnp.zeros(d))
        if center:
            weights |= dict(b_pi=jnp.zeros(num_actions), b_v=jnp.zeros(()))
        centred = dict(mean=Welford.zeros((d,))) if center else {}
        return cls(**weights, **centred, trace=jax.tree.map(jnp.zeros_like, weights))

    def features(self, h):
        """What the readout reads at the normalised action token h [D]: h itself, or centred, h less the mean of
        the tokens of the life's transitions so far (zero until there is one)."""
        if self.mean is None:
            return h
        return jnp.where(self.mean.count > 0, h - self.mean.mean, 0.0)

    def read(self, x):
        """(logits [A], value []) that the readout adds at its features x [D] (`features`)."""
        if self.mean is None:
            return self.w_pi @ x, self.w_v @ x
        return self.w_pi @ x + self.b_pi, self.w_v @ x + self.b_v

    def act(self, h, out: dict):
        """At what it reads, h [D] (`reads`): the act's outputs with what `learn_readouts`
        needs noted (h, `fast_h`, and where centred the features read, `fast_x`), and the (logits, value) it adds."""
        x = self.features(h)
        return out | {"fast_h": h} | ({} if self.mean is None else {"fast_x": x}), self.read(x)

    def learn(self, step, x, logits, action, delta, h=None, decay=0.0) -> "Readout":
        """One actor-critic step from transition t: x [D], the features read at s_t (and h [D] the token, which
        the centred readout's mean takes in), the policy's logits [A] and the action taken, and its (scaled) TD
        error, along the trace decayed by `decay` (gamma * agents.fast_lam; 0: TD(0)) and this transition's
        gradient normalised by |x|^2 + 1, so the step's size does not depend on the width. A step above 1 moves the
        policy alone further: the value's stays at 1 (NLMS diverges past 2: measured, docs/experiments.md)."""
        ascent = jax.nn.one_hot(action, logits.shape[-1]) - jax.nn.softmax(logits)  # d log pi(a) / d logits
        grad = dict(w_pi=jnp.outer(ascent, x), w_v=x) | ({} if self.mean is None else dict(b_pi=ascent, b_v=1.0))
        trace = {k: decay * self.trace[k] + g / (x @ x + 1.0) for k, g in grad.items()}
        moves_v = trace["w_v"] @ x + trace.get("b_v", 0.0)  # d V(s_t) per unit of step * delta
        k = delta / jnp.maximum(jnp.abs(moves_v), 1.0)  # V(s_t) moves at most step * delta
        k = {"v": jnp.minimum(step, 1.0) * k, "pi": step * k}  # the value's step capped where NLMS stays stable
        new = self.replace(trace=trace, **{name: getattr(self, name) + k[name[2:]] * e for name, e in trace.items()})
        return new if self.mean is None else new.replace(mean=self.mean.update(h))


def reads(kind: str, h, near, facing, seen=None, danger=None):
    """What the readout reads at an act, by agents.fast_input (`kind`): the action token h [D]; facing [K]: the kind
    it faces, near[facing], so that only a step facing a kind moves what it does facing that kind; senses [5K]: near
    [4, K] (the kinds beside the agent on each side, flattened) and near[facing] [K] (the kind it faces); view [9K + 1]:
    those, seen [4, K] (the moves toward the nearest of each kind in view) and danger [] (`Senses.danger`: the hostile
    health beside it, in zombies, by agents.danger_range), so that its value can tell a zombie one step off from none,
    and a struck zombie from a fresh one."""
    if kind == "token":
        return h
    near = near.astype(jnp.float32)
    if kind == "facing":
        return near[facing]
    parts = [near.reshape(-1), near[facing]]
    return jnp.concatenate(parts if kind == "senses" else [*parts, seen.astype(jnp.float32).reshape(-1), danger[None]])


def width(kind: str, d: int, k: int) -> int:
    """The length of what `reads` returns for agents.fast_input `kind`, a token of width d and k neighbour kinds."""
    four = jax.ShapeDtypeStruct((4, k), jnp.float32)
    return jax.eval_shape(lambda *a: reads(kind, *a), jax.ShapeDtypeStruct((d,), jnp.float32), four,
                          jax.ShapeDtypeStruct((), jnp.int32), four, jax.ShapeDtypeStruct((), jnp.float32)).shape[0]


def inherit(born: Readout | None, parents: Readout | None, src, share):
    """Newborns' readouts ([N] leading axis) where `share` [N] > 0: that share of the readout of row src[s] of
    `parents` (agents.fast_inherit: a parent passes on what it learned in life, outside its genes; a token it
    learned on comes from genes the child mostly shares, senses mean to the child what they meant to the parent).
    Its trace and running mean start afresh."""
    if born is None:
        return None

    def take(mine, theirs):
        s = share.reshape(share.shape + (1,) * (mine.ndim - 1))
        return jnp.where(s > 0, s * theirs[src], mine)

    return born.replace(**{k: take(getattr(born, k), getattr(parents, k))
                           for k in ("w_pi", "w_v", "b_pi", "b_v") if getattr(born, k) is not None})


def learn_readouts(readout: Readout | None, step: float, carried: dict, delta, decay=0.0):
    """Every slot's readout [N, ...] after its transition (`Readout.learn`; carried: the act on s_t; decay: the
    trace's, gamma * agents.fast_lam), kept as it was where the TD error is not finite (no transition); None (no
    readout) stays None."""
    if readout is None:
        return None
    out = carried["out"]
    x = out.get("fast_x", out["fast_h"])  # (uncentred, the features are the token)
    new = jax.vmap(Readout.learn, (0, None, 0, 0, 0, 0, 0, None))(readout, step, x, out["logits"], carried["action"],
                                                                    delta, out["fast_h"], decay)
    return treeutil.select(jnp.isfinite(delta), new, readout)

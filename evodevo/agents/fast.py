"""The fast readout (agents.fast_readout): per-life linear policy and value weights on the action token.

Why: the positive control of benchmarks/within_life.py (`--pays noop`: a reward of 1 for one action) showed
the network's own learner too slow and too noisy for a life of ~300 steps. Adam moves every coordinate
about one step size whatever its gradient, so the policy drifts with the noise of every objective while a
rewarded action takes ~200 steps to show. These weights start at zero at birth (a newborn acts as its
genes say) and follow the TD error alone, scaled by the token's squared norm (normalised LMS): one
transition with TD error `delta` moves the chosen action's logit by about `step * delta * (1 - pi)`. The
inherited network supplies the features; the life learns what to do with them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from evodevo import treeutil


@struct.dataclass
class Readout:
    w_pi: jax.Array  # [A, D] added to the policy's logits: w_pi @ h
    w_v: jax.Array  # [D] added to the value: w_v . h

    @classmethod
    def zeros(cls, num_actions: int, d: int) -> "Readout":
        return cls(w_pi=jnp.zeros((num_actions, d)), w_v=jnp.zeros(d))

    def read(self, h):
        """(logits [A], value []) that the readout adds at the normalised action token h [D]."""
        return self.w_pi @ h, self.w_v @ h

    def learn(self, step, h, logits, action, delta) -> "Readout":
        """One TD(0) actor-critic step from transition t: h [D], the policy's logits [A] and the action taken
        at s_t, and its (scaled) TD error. Normalised by |h|^2, so its size does not depend on the width."""
        k = step * delta / (h @ h + 1.0)
        ascent = jax.nn.one_hot(action, logits.shape[-1]) - jax.nn.softmax(logits)  # d log pi(a) / d logits
        return Readout(w_pi=self.w_pi + k * jnp.outer(ascent, h), w_v=self.w_v + k * h)


def learn_readouts(readout: Readout | None, step: float, carried: dict, delta):
    """Every slot's readout [N, ...] after its transition (`Readout.learn`; carried: the act on s_t), kept as
    it was where the TD error is not finite (no transition); None (no readout) stays None."""
    if readout is None:
        return None
    out = carried["out"]
    new = jax.vmap(Readout.learn, (0, None, 0, 0, 0, 0))(readout, step, out["fast_h"], out["logits"], carried["action"],
                                                           delta)
    return treeutil.select(jnp.isfinite(delta), new, readout)

"""The sense of place: where the agent takes itself to be, and the head that keeps it there.

The place head predicts the displacement of the coming step, pos_{t+1} - pos_t in map cells,
from the state and the chosen action (it reads the forward model's hidden layer, which sees
the action), and learns it one step later from the true displacement: path integration.

The grid-cell code (`transformer.place_code`) encodes a position. With `agents.place_input`
that is the true position (a GPS); without it, the agent's own estimate: the position it was
born at, sensed once at its first act, then at every act the last act's estimate plus the
displacement its head predicted for the action it chose there (dead reckoning). The code is
then only as good as the agent's path integration. The spawn position, not 0, starts the
estimate: the code stays in the world's frame, the frame of the inherited place weights and
of a world whose map persists across generations, and the drift |estimate - position| is
the path integration's own error from the first step on.
"""

from __future__ import annotations

import jax.numpy as jnp


def estimate(place_input: bool, place_est, place_step, pos, prev_action):
    """[..., 2] the position that this act's grid code encodes. `place_est`, `place_step`: the last
    act's estimate and its predicted displacement; `pos` the true position; a newborn (`prev_action`
    < 0: it has not acted yet) knows where it was born."""
    true = pos.astype(jnp.float32)
    if place_input:
        return true
    return jnp.where((prev_action < 0)[..., None], true, place_est + place_step)


def displacement(pos, pos_next):
    """The place head's target: the step's true displacement pos_{t+1} - pos_t in map cells."""
    return (pos_next - pos).astype(jnp.float32)


def distance(a, b):
    """Euclidean distance in map cells between two positions (or two displacements)."""
    return jnp.linalg.norm(jnp.asarray(a, jnp.float32) - b, axis=-1)

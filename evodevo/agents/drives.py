"""What an agent wants: its drive gene and the homeostatic part of its reward (Keramati & Gutkin).

Functions of the body alone, shared by the learner's reward (`learner`) and the debrief that the
next act reads (`debrief`), which cannot import the learner that imports it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evodevo.agents.kind import DRIVES, NEEDS

DRIVE_INIT = 0.1  # founders' drive genes: weights ~ N(0, DRIVE_INIT^2), small and random, not hand-set


def init_drive(key) -> dict:
    """A founder's drive gene: the weights of its reward (`kind.DRIVES`)."""
    return {"w": DRIVE_INIT * jax.random.normal(key, (len(DRIVES),))}


def drive(w, body):
    """D(h) = sum_i w_i (1 - h_i)^2: the body's weighted deviation from its setpoints (full), over
    the needs (health, food, drink, energy in [0, 1]; `w` [NEEDS]); Keramati & Gutkin's drive."""
    return jnp.sum(w * (1.0 - body[..., :NEEDS]) ** 2, -1)


def drive_reduction(w, body, body_next):
    """r_drive = D(h_t) - D(h_{t+1}): positive when a step brings the body back toward its setpoints."""
    return drive(w, body) - drive(w, body_next)

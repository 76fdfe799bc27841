"""The online optimiser of an agent's flat trainable vector, built from optax pieces."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def scale_coordinates() -> optax.GradientTransformationExtraArgs:
    """Multiplies the flat update at the extra argument `coordinates` (indices) by `factors` (the
    gates of layers grown in during life learn faster: they start closed). A scatter on those few
    coordinates, not a product with a full-length vector of ones built on every step."""

    def update(updates, state, params=None, *, coordinates, factors, **extra):
        return updates.at[coordinates].multiply(factors), state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def optimizer(grad_clip=1.0, lr=1.0, max_update=1.0) -> optax.GradientTransformationExtraArgs:
    """The stream-x recipe: clip the gradient's norm, Adam, per-coordinate learning rates, and a
    bound on the norm of each update. The state's structure does not depend on the values."""
    return optax.chain(
        optax.clip_by_global_norm(grad_clip),
        optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
        optax.scale(-lr),
        scale_coordinates(),
        optax.clip_by_global_norm(max_update),
    )


def decay_trace(trace, increment, gamma, lam):
    """Accumulating eligibility trace: e_t = gamma lambda e_{t-1} + increment_t."""
    return gamma * lam * trace + increment


def obgd(step_size, delta, trace, kappa):
    """stream-x's overshoot-bounded step (Elsayed et al. 2024) along an eligibility trace: `step_size * delta * e`,
    shrunk where `step_size * kappa * max(|delta|, 1) * ||e||_1 > 1`, so that one step cannot overshoot the TD
    target and its L1 norm is at most 1 / kappa (stream-x: kappa 2 for a value, 3 for a policy; one vector learns
    both here). Its size follows the TD error: a critic with nothing to learn moves the actor little (Adam's steps
    are the same size whatever the error). delta [...], trace [..., P] -> the ascent step [..., P]."""
    m = step_size * kappa * jnp.maximum(jnp.abs(delta), 1.0) * jnp.abs(trace).sum(-1)
    return (step_size / jnp.maximum(m, 1.0) * delta)[..., None] * trace

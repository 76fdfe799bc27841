"""Small pytree helpers shared by agents/ and genepool/ (which do not import each other)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def flat_positions(tree):
    """`tree` (arrays or shapes) with each leaf replaced by the indices its elements take in
    `ravel_pytree(tree)[0]` (leaves in `tree_flatten` order, each raveled row-major): numpy, no compile."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    sizes = [math.prod(x.shape) for x in leaves]
    start = np.cumsum([0, *sizes])
    return treedef.unflatten([np.arange(a, a + n).reshape(x.shape) for x, a, n in zip(leaves, start, sizes)])


def traced_layout(make):
    """(shapes of `make()`'s pytree, the unravel of its `ravel_pytree`), traced only: nothing is computed
    (a layout from real random founders cost hundreds of small compiles per process)."""
    unravel = []

    def trace():
        tree = make()
        unravel.append(ravel_pytree(tree)[1])  # static: built from shapes and dtypes alone
        return tree

    return jax.eval_shape(trace), unravel[0]


def _expand(mask, x):
    """`mask` reshaped to broadcast against `x`, whose leading axes it matches."""
    mask = jnp.asarray(mask)
    return mask.reshape(mask.shape + (1,) * (jnp.ndim(x) - mask.ndim))


def select(mask, a, b):
    """Leaf by leaf `a` where `mask`, else `b`; `mask` is a scalar or matches the leaves' leading axes."""
    return jax.tree.map(lambda x, y: jnp.where(_expand(mask, x), x, y), a, b)


def insert_at(x, p, value):
    """Insert `value` at index `p` of the leading axis, shifting later entries right (the last drops)."""
    i = jnp.arange(x.shape[0])
    return jnp.where(_expand(i == p, x), value, x[jnp.where(i <= p, i, i - 1)])


def remove_at(x, p, fill):
    """Remove index `p` of the leading axis, shifting later entries left; `fill` enters at the end."""
    n = x.shape[0]
    i = jnp.arange(n)
    return jnp.where(_expand(i == n - 1, x), fill, x[jnp.minimum(jnp.where(i < p, i, i + 1), n - 1)])


def set_row(tree, i, row):
    """Every leaf of `tree` with row `i` of its leading axis replaced by the leaf of `row`."""
    return jax.tree.map(lambda x, r: x.at[i].set(r), tree, row)


def row(tree, i):
    """Row `i` of every leaf's leading axis."""
    return jax.tree.map(lambda x: x[i], tree)

"""One run over several hosts (`jax.distributed`, one process per host): what the host loop needs.

Every process runs the same loop on the same global arrays, and a computation on arrays that
span the hosts is a collective: every process must make the same jitted calls in the same order.
So per-slot arrays come to the host through `fetch` on every process (an all-gather of the
shards, which no process holds alone), a decision taken from one process's clock or signals is
shared (`anywhere`), and only `primary()`, process 0, writes the run's files (lifetimes,
TensorBoard, snapshot, config, lineage picture). Checkpoints are orbax's: every process writes its
own shards and process 0 the metadata. With one process each helper is the plain call.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import process_count, process_index  # looked up here at each call: tests patch them
from jax.experimental import multihost_utils


def primary() -> bool:
    """This process writes the run's files (process 0; the only one of a single-host run)."""
    return process_index() == 0


def fetch(tree):
    """Host numpy copies of `tree`'s arrays, whole on every process (`jax.device_get` on one)."""
    if process_count() == 1:
        return jax.device_get(tree)

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)  # the global value
        return jax.device_get(x)

    return jax.tree.map(one, tree)


def put(tree, shardings):
    """`tree` (the same values on every process) laid out by `shardings` (`jax.device_put` on one
    process). On several, each process builds only its own shards from its host copy: device_put
    of a process-local array onto a sharding that spans processes gave broken replicated arrays
    (jax 0.10), and of numpy it compares every leaf across the hosts first."""
    if process_count() == 1:
        return jax.device_put(tree, shardings)
    return jax.tree.map(
        lambda x, s: jax.make_array_from_callback(np.shape(x), s, lambda i, x=np.asarray(x): x[i]), tree, shardings)


def anywhere(flag: bool) -> bool:
    """True on every process if `flag` is true on any (a stop signal, a snapshot falling due)."""
    if process_count() == 1:
        return bool(flag)
    return bool(np.any(multihost_utils.process_allgather(np.bool_(flag))))


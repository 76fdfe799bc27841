"""The slot axis over devices, with JAX's own sharding (a 1-D `Mesh` and `NamedSharding`).

Every per-slot array (the worlds, the agents, the genomes, the slot bookkeeping) is split along
its leading axis over the mesh axis "slots"; the gene pool and the scalars are replicated. The
jitted chunk is written for one device; XLA's partitioner (GSPMD) splits it, and the reductions
over slots that the pool needs become collectives. With one device nothing is placed: the run
is the plain single-device program.

The mesh is built from `jax.devices()`, which under `jax.distributed.initialize` spans every host
of a multi-host job, so the same code shards over several machines (see the README).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from evodevo.config import ConfigError

SLOTS = "slots"


def slot_mesh(n_slots: int, devices: int) -> Mesh | None:
    """The mesh of `devices` devices (0: all) for `n_slots` slots; None for one device."""
    have = jax.device_count()
    want = have if devices == 0 else devices
    if want > have:
        raise ConfigError(f"run.devices={devices} but {have} device(s) are available "
                          f"({jax.default_backend()}); set run.devices to at most {have} (0: all)")
    if jax.process_count() > 1 and 1 < want < have:  # every host holds slots (the host loop gathers from all)
        raise ConfigError(f"run.devices={devices} but a run over {jax.process_count()} hosts uses all their "
                          f"{have} devices; set run.devices to 0")
    if n_slots % want:
        raise ConfigError(f"world.n_slots={n_slots} cannot be split evenly over {want} devices; choose a "
                          f"multiple of {want} for world.n_slots (or set run.devices)")
    if want == 1:
        return None
    return Mesh(np.asarray(jax.devices()[:want]), (SLOTS,))


def shardings(mesh: Mesh, tree, n_slots: int, replicate=lambda path: False):
    """NamedShardings for `tree`: leaves whose leading axis is the slot axis (size `n_slots`) split
    over the mesh, the others (and every leaf where `replicate(path)`) replicated."""

    def one(path, x):
        split = np.ndim(x) >= 1 and np.shape(x)[0] == n_slots and not replicate(path)
        return NamedSharding(mesh, PartitionSpec(SLOTS) if split else PartitionSpec())

    return jax.tree_util.tree_map_with_path(one, tree)

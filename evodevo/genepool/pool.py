"""Gene pool storage: a fixed-capacity bank of genes per kind (encoder, layer, head).

A bank is a pytree whose arrays have a leading axis of G slots; `alive` marks the
slots in use. Genes carry lineage metadata (id, parent id, birth step). Agents
refer to genes by slot (for gathering weights) and record gene ids (slots can be
reused after a discard; ids never are).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

KINDS = ("encoder", "layer", "head")


@struct.dataclass
class GeneBank:
    params: dict  # name -> [G, ...] gene weights
    alive: jax.Array  # [G] bool
    gene_id: jax.Array  # [G] int32, unique over the run; -1 for an empty slot
    parent_id: jax.Array  # [G] int32, -1 for a founder
    birth_step: jax.Array  # [G] int32

    @property
    def capacity(self) -> int:
        return self.alive.shape[0]


@struct.dataclass
class GenePool:
    encoder: GeneBank
    layer: GeneBank
    head: GeneBank
    next_id: jax.Array  # int32: the next fresh gene id
    rnd_target: dict  # fixed random network of the RND novelty term (never learns, never evolves)

    def bank(self, kind: str) -> GeneBank:
        return getattr(self, kind)


def init_bank(key, capacity: int, init_fn, first_id) -> GeneBank:
    """A full bank of `capacity` random founder genes with ids first_id, first_id + 1, ..."""
    params = jax.vmap(init_fn)(jax.random.split(key, capacity))
    return GeneBank(
        params=params,
        alive=jnp.ones(capacity, bool),
        gene_id=first_id + jnp.arange(capacity, dtype=jnp.int32),
        parent_id=jnp.full(capacity, -1, jnp.int32),
        birth_step=jnp.zeros(capacity, jnp.int32),
    )


def init_pool(key, capacities: dict, init_fns: dict, rnd_target: dict) -> GenePool:
    banks, next_id = {}, 0
    for kind, k in zip(KINDS, jax.random.split(key, len(KINDS))):
        banks[kind] = init_bank(k, capacities[kind], init_fns[kind], next_id)
        next_id += capacities[kind]
    return GenePool(**banks, next_id=jnp.int32(next_id), rnd_target=rnd_target)


def gather(bank: GeneBank, slots):
    """Gene weights at `slots` (any shape of int indices) -> params with that leading shape."""
    return jax.tree.map(lambda w: w[slots], bank.params)


def sample_alive(key, bank: GeneBank, shape, weights=None):
    """Slots of living genes, uniformly (or by `weights` over slots)."""
    p = bank.alive.astype(jnp.float32) if weights is None else weights * bank.alive
    return jax.random.choice(key, bank.capacity, shape=shape, p=p / p.sum())

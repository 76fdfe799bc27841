"""Gene pool storage and its statistics: a fixed-capacity bank of genes per kind.

A bank is a pytree whose arrays have a leading axis of G slots; `alive` marks the
slots in use. Genes carry lineage metadata (id, parent id, birth step, lineage
depth), fitness statistics credited from the lives that carried them, the mean
relative depth at which they were used (their role: early, mid or late), a
self-adapted mutation scale, a selection frequency, and an accumulator for the
evolution-strategies step that moves their weights between generations.

A gene's weights are one flat vector ([G, P] per bank): gathering, mutating and moving
a gene are single array operations, whatever the gene's layout. `GeneLayout` turns a
flat gene back into its named tensors. Agents refer to genes by slot (for gathering
weights) and record gene ids (slots are reused after a discard; ids never are). Every
function here is pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.flatten_util import ravel_pytree

from evodevo import treeutil

KINDS = ("encoder", "layer", "head", "drive")
UNITS = ("encoder", "head", "drive")  # kinds of which a genome carries exactly one gene (the layers: a list)
ROLES = ("early", "mid", "late")
ANCESTRY_SIZE = 4096  # the ancestry table keeps the last this many genes made (a ring over gene ids)
MIN_ALIVE = 2  # a discard never leaves a bank with fewer living genes than this


@dataclass(frozen=True, eq=False)
class GeneLayout:
    """How one kind of gene is laid out in its flat vector (static, not part of any state)."""

    unravel: Callable  # [P] -> {name: tensor}
    segment: np.ndarray  # [P] int32: which tensor each value belongs to
    segment_size: np.ndarray  # [n tensors] values per tensor
    fixed_scale: np.ndarray | None = None  # [n tensors] mutation scale per tensor; None: the gene's own RMS

    @classmethod
    def of(cls, init: Callable, fixed: bool = False) -> "GeneLayout":
        """The layout of the genes `init(key)` makes (traced only, unless `fixed`). `fixed`: mutations scale
        with a founder's RMS per tensor, not with the gene's own (for a few weights whose size means something)."""
        example, unravel = treeutil.traced_layout(lambda: init(jax.random.PRNGKey(0)))
        sizes = np.array([math.prod(example[k].shape) for k in sorted(example)], np.int32)  # ravel order: sorted keys
        segment = np.repeat(np.arange(len(sizes)), sizes)
        rms = None
        if fixed:  # from a founder's values
            flat = np.asarray(ravel_pytree(init(jax.random.PRNGKey(0)))[0])
            rms = np.sqrt(np.bincount(segment, flat ** 2) / sizes)
        return cls(unravel=unravel, segment=segment, segment_size=sizes, fixed_scale=rms)

    def ravel(self, tree: dict):
        return ravel_pytree(tree)[0]


@struct.dataclass
class GeneBank:
    params: jax.Array  # [G, P] flat gene weights
    alive: jax.Array  # [G] bool
    gene_id: jax.Array  # [G] int32, unique over the run; -1 for an empty slot
    parent_id: jax.Array  # [G] int32, -1 for a founder
    birth_step: jax.Array  # [G] int32 (founders 0; a split copy: the split step)
    lineage_depth: jax.Array  # [G] int32 splits between the founder and this gene
    count: jax.Array  # [G] int32 lives credited
    fit_mean: jax.Array  # [G] float32 mean lifetime fitness of those lives
    fit_m2: jax.Array  # [G] float32 sum of squared deviations (Welford)
    fresh: jax.Array  # [G] int32 lives credited since birth or the last split
    depth_sum: jax.Array  # [G] float32 sum of relative depths (layer genes) over credited uses
    depth_n: jax.Array  # [G] float32 number of those uses
    sigma: jax.Array  # [G] float32 self-adapted mutation scale (relative to each tensor's RMS)
    freq: jax.Array  # [G] float32 selection frequency (sums to 1 over living genes)
    births: jax.Array  # [G] int32 carriers born with a mutated copy (antithetic pairing, darwinian)
    es_sum: jax.Array  # [G, P] sum of fitness-weighted perturbations since the last pool update
    es_n: jax.Array  # [G] float32 lives that contributed to es_sum

    @property
    def capacity(self) -> int:
        return self.alive.shape[0]


@struct.dataclass
class Ancestry:
    """The last ANCESTRY_SIZE genes made (a ring over gene ids; older entries are overwritten):
    the lineage tree, dead branches included."""

    gene_id: jax.Array  # [H] int32, -1 where unused
    parent_id: jax.Array  # [H] int32
    kind: jax.Array  # [H] int8 index into KINDS
    birth_step: jax.Array  # [H] int32
    end_step: jax.Array  # [H] int32 discard step, -1 while alive


@struct.dataclass
class GenePool:
    banks: dict  # {kind: GeneBank} for every kind in KINDS
    next_id: jax.Array  # int32: the next fresh gene id
    noise_key: jax.Array  # fixed PRNG key of the darwinian mutations (regenerated at death)
    life_count: jax.Array  # int32 lives credited (broken ones excluded)
    life_mean: jax.Array  # float32 running mean lifespan of recent lives (the survival yardstick)
    fit_mean: jax.Array  # float32 running mean lifetime fitness (the shrinkage target)
    splits: jax.Array  # [len(KINDS)] int32 cumulative splits per kind
    discards: jax.Array  # [len(KINDS)] int32 cumulative discards per kind
    updates: jax.Array  # int32 pool updates so far
    history: Ancestry
    archive: object  # genome.Archive of the recent lives' heritable genomes (tournament candidates)

    def bank(self, kind: str) -> GeneBank:
        return self.banks[kind]

    def with_bank(self, kind: str, bank: GeneBank) -> "GenePool":
        return self.replace(banks=dict(self.banks, **{kind: bank}))


# --------------------------------------------------------------------------- construction


def init_bank(key, capacity: int, founders: int, init_fn, first_id, sigma: float) -> GeneBank:
    """A bank whose first `founders` slots hold random genes (flat vectors from `init_fn(key)`)
    with ids first_id, first_id + 1, ..."""
    alive = jnp.arange(capacity) < founders
    params = jax.vmap(init_fn)(jax.random.split(key, capacity)) * alive[:, None]
    zf, zi = jnp.zeros(capacity, jnp.float32), jnp.zeros(capacity, jnp.int32)
    return GeneBank(
        params=params,
        alive=alive,
        gene_id=jnp.where(alive, first_id + jnp.arange(capacity, dtype=jnp.int32), -1),
        parent_id=jnp.full(capacity, -1, jnp.int32),
        birth_step=zi, lineage_depth=zi, count=zi, fit_mean=zf, fit_m2=zf, fresh=zi,
        depth_sum=zf, depth_n=zf,
        sigma=jnp.where(alive, sigma, 0.0).astype(jnp.float32),
        freq=(alive / founders).astype(jnp.float32),
        births=zi,
        es_sum=jnp.zeros_like(params),
        es_n=zf,
    )


def init_history(banks: dict) -> Ancestry:
    h = Ancestry(
        gene_id=jnp.full(ANCESTRY_SIZE, -1, jnp.int32), parent_id=jnp.full(ANCESTRY_SIZE, -1, jnp.int32),
        kind=jnp.zeros(ANCESTRY_SIZE, jnp.int8), birth_step=jnp.zeros(ANCESTRY_SIZE, jnp.int32),
        end_step=jnp.full(ANCESTRY_SIZE, -1, jnp.int32),
    )
    for k, bank in banks.items():
        live = jnp.where(bank.alive, bank.gene_id % ANCESTRY_SIZE, ANCESTRY_SIZE)  # dropped when not alive
        h = h.replace(
            gene_id=h.gene_id.at[live].set(bank.gene_id, mode="drop"),
            kind=h.kind.at[live].set(jnp.int8(KINDS.index(k)), mode="drop"),
        )
    return h


def init_pool(key, capacities: dict, founders: dict, init_fns: dict, sigma: dict, archive) -> GenePool:
    """A pool whose banks hold `founders[kind]` random genes (flat, from `init_fns[kind](key)`) with
    mutation scale `sigma[kind]`."""
    banks, next_id = {}, 0
    k_banks, k_noise = jax.random.split(key)
    for kind, k in zip(KINDS, jax.random.split(k_banks, len(KINDS))):
        banks[kind] = init_bank(k, capacities[kind], founders[kind], init_fns[kind], next_id, sigma[kind])
        next_id += founders[kind]
    return GenePool(
        banks=banks, next_id=jnp.int32(next_id), noise_key=k_noise,
        life_count=jnp.int32(0), life_mean=jnp.float32(0.0), fit_mean=jnp.float32(0.0),
        splits=jnp.zeros(len(KINDS), jnp.int32), discards=jnp.zeros(len(KINDS), jnp.int32), updates=jnp.int32(0),
        history=init_history(banks), archive=archive,
    )


# --------------------------------------------------------------------------- reading


def gather(bank: GeneBank, slots):
    """Flat gene weights at `slots` (any shape of int indices): [..., P]."""
    return bank.params[slots]


def valid_ref(bank: GeneBank, slot, gene_id):
    """A genome's reference (slot, id) still names a living gene (slots are reused)."""
    return bank.alive[slot] & (bank.gene_id[slot] == gene_id)


def sample(key, bank: GeneBank, shape=(), weights=None):
    """Slots of living genes, by `weights` over slots (uniform when None; uniform if all zero)."""
    alive = bank.alive.astype(jnp.float32)
    p = alive if weights is None else weights * alive
    p = jnp.where(p.sum() > 0, p, alive)
    return jax.random.choice(key, bank.capacity, shape=shape, p=p / p.sum())


def mean_depth(bank: GeneBank):
    """[G] mean relative depth (0 = first layer, 1 = last) of each gene's credited uses; 0.5 unknown."""
    return jnp.where(bank.depth_n > 0, bank.depth_sum / jnp.maximum(bank.depth_n, 1.0), 0.5)


def relative_depth(position, length):
    """Relative depth of layer `position` in a list of `length` layers: 0 first, 1 last."""
    return (position + 0.5) / jnp.maximum(length, 1)


def role_of(depth):
    """int32 role of a relative depth: 0 early (< 1/3), 1 mid, 2 late (> 2/3)."""
    return jnp.where(depth < 1 / 3, 0, jnp.where(depth > 2 / 3, 2, 1)).astype(jnp.int32)


def roles(bank: GeneBank):
    """[G] int32 role of each gene by the mean relative depth of its uses."""
    return role_of(mean_depth(bank))


def role_at(position, length):
    """Role of layer `position` in a list of `length` layers."""
    return role_of(relative_depth(position, length))


def shrunk_fitness(bank: GeneBank, prior, k: float):
    """[G] fitness shrunk toward `prior` while a gene has few lives: (n mean + k prior) / (n + k)."""
    n = bank.count.astype(jnp.float32)
    return (n * bank.fit_mean + k * prior) / (n + k)


def fitness_stderr(bank: GeneBank):
    """[G] standard error of the mean fitness (inf below two lives)."""
    n = bank.count.astype(jnp.float32)
    var = bank.fit_m2 / jnp.maximum(n - 1.0, 1.0)
    return jnp.where(n >= 2, jnp.sqrt(var / jnp.maximum(n, 1.0)), jnp.inf)


def carriers(capacity: int, slots, mask):
    """[G] int32 how many agents carry each gene: `slots` and `mask` are [N, k] (k genes per agent);
    a gene twice in one genome counts once."""
    per_agent = jax.vmap(lambda s, m: jnp.zeros(capacity, bool).at[s].max(m))(slots, mask)
    return per_agent.sum(0, dtype=jnp.int32)


def entropy(freq):
    """Shannon entropy (nats) of a frequency vector."""
    return -jnp.sum(jnp.where(freq > 0, freq * jnp.log(jnp.maximum(freq, 1e-30)), 0.0))


# --------------------------------------------------------------------------- credit


def credit(bank: GeneBank, carried, fitness, depth_sum=None, depth_n=None) -> GeneBank:
    """Credit one life's `fitness` to the genes with `carried[g]` (bool [G]): Welford update of
    each gene's mean and variance; layer genes also add the relative depths they were used at."""
    c = carried.astype(jnp.int32)
    n = bank.count + c
    delta = fitness - bank.fit_mean
    mean = bank.fit_mean + c * delta / jnp.maximum(n, 1)
    m2 = bank.fit_m2 + c * delta * (fitness - mean)
    out = bank.replace(count=n, fit_mean=mean, fit_m2=m2, fresh=bank.fresh + c)
    if depth_sum is not None:
        out = out.replace(depth_sum=bank.depth_sum + depth_sum, depth_n=bank.depth_n + depth_n)
    return out


def accumulate(bank: GeneBank, slots, deltas, weights) -> GeneBank:
    """Add `weights[i] * deltas[i]` (flat [n, P], one row per entry of `slots`) to the ES accumulators."""
    return bank.replace(
        es_sum=bank.es_sum.at[slots].add(weights[:, None] * deltas),
        es_n=bank.es_n.at[slots].add((weights != 0).astype(jnp.float32)),
    )


def mutation_noise(gene, key, sigma, layout: GeneLayout):
    """A mutation of one flat gene: Gaussian noise scaled, tensor by tensor, by sigma x (RMS + 0.01),
    the RMS the gene's own or, with a fixed layout, its founder's (then a gene's growth does not
    grow its mutations, which would let drift outrun selection)."""
    seg = jnp.asarray(layout.segment)
    if layout.fixed_scale is None:
        rms = jnp.sqrt(jax.ops.segment_sum(gene**2, seg, num_segments=len(layout.segment_size)) / layout.segment_size)
    else:
        rms = jnp.asarray(layout.fixed_scale, gene.dtype)
    return sigma * (rms[seg] + 0.01) * jax.random.normal(key, gene.shape, gene.dtype)


def copy_key(pool: GenePool, gene_id, index):
    """Key of the `index`-th mutated copy of gene `gene_id`: copies 2j and 2j+1 share it (antithetic)."""
    return jax.random.fold_in(jax.random.fold_in(pool.noise_key, gene_id), index // 2)


def noise_sign(index):
    return (1 - 2 * (index % 2)).astype(jnp.float32)

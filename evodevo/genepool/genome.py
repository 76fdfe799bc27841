"""Genomes and how they are inherited: layer lists, crossover, mutation, validity.

A genome names one gene of each unit kind (encoder, head, drive: `pool.UNITS`) and an ordered
list of up to L layer genes (packed at the front: `active` is a prefix) with their gate
alphas. Genes are named
by pool slot (to gather weights) and id (slots are reused after a discard). All
functions are pure, branchless and work on one genome (vmap for many).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from evodevo.genepool import pool as gp
from evodevo.treeutil import insert_at, remove_at, select

# Per-layer fields of a Genome (leading axis L), shifted together on insertion and deletion.
LAYER_FIELDS = ("layer_slot", "layer_id", "active", "gates", "developmental", "noise_layer")


@struct.dataclass
class Genome:
    unit_slot: jax.Array  # [U] int32 pool slot of the gene of each unit kind (pool.UNITS order)
    unit_id: jax.Array  # [U] int32 their gene ids
    layer_slot: jax.Array  # [L] int32 pool slots of the layer genes (0 where inactive)
    layer_id: jax.Array  # [L] int32 gene ids, -1 where inactive
    active: jax.Array  # [L] bool, a prefix: layers 0 .. length-1
    gates: jax.Array  # [L, 2] float32 inherited gate alphas (attention, MLP); 0 where inactive
    developmental: jax.Array  # [L] bool: inserted during this life (not inherited)
    noise_unit: jax.Array  # [U] int32 index of this carrier's mutated copy of each gene (darwinian), -1 none
    noise_layer: jax.Array  # [L] int32

    @property
    def length(self):
        return self.active.sum(-1)

    def slot(self, kind: str):
        """Pool slot of this genome's gene of a unit kind."""
        return self.unit_slot[..., gp.UNITS.index(kind)]

    def gene_id(self, kind: str):
        return self.unit_id[..., gp.UNITS.index(kind)]


def empty(l_max: int) -> Genome:
    u = len(gp.UNITS)
    return Genome(
        unit_slot=jnp.zeros(u, jnp.int32), unit_id=jnp.zeros(u, jnp.int32),
        layer_slot=jnp.zeros(l_max, jnp.int32), layer_id=jnp.full(l_max, -1, jnp.int32),
        active=jnp.zeros(l_max, bool), gates=jnp.zeros((l_max, 2), jnp.float32),
        developmental=jnp.zeros(l_max, bool), noise_unit=jnp.full(u, -1, jnp.int32),
        noise_layer=jnp.full(l_max, -1, jnp.int32),
    )


def _unit_ids(pool: gp.GenePool, slots):
    """[U] gene ids of the unit genes at `slots` ([U])."""
    return jnp.stack([pool.bank(k).gene_id[slots[i]] for i, k in enumerate(gp.UNITS)])


# --------------------------------------------------------------------------- layer lists


def _layers(g: Genome) -> dict:
    return {f: getattr(g, f) for f in LAYER_FIELDS}


def _blank_layer(g: Genome) -> dict:
    return {"layer_slot": 0, "layer_id": -1, "active": False, "gates": jnp.zeros(2), "developmental": False,
            "noise_layer": -1}


def add_layer_gene(g: Genome, p, slot, gene_id, gate=0.0, developmental=False) -> Genome:
    """Insert a layer gene at position `p` (<= length < L) with both gate alphas = `gate`."""
    new = {"layer_slot": slot, "layer_id": gene_id, "active": True, "gates": jnp.full(2, gate, jnp.float32),
           "developmental": developmental, "noise_layer": -1}
    return g.replace(**{f: insert_at(x, p, jnp.asarray(new[f], x.dtype)) for f, x in _layers(g).items()})


def drop_layer_gene(g: Genome, p) -> Genome:
    blank = _blank_layer(g)
    return g.replace(**{f: remove_at(x, p, jnp.asarray(blank[f], x.dtype)) for f, x in _layers(g).items()})


def compact(g: Genome, keep) -> Genome:
    """Keep the layers where `keep` (bool [L]) in order, packed at the front."""
    keep = keep & g.active
    order = jnp.argsort(~keep, stable=True)
    n = keep.sum()
    inside = jnp.arange(keep.shape[0]) < n
    blank = _blank_layer(g)
    fields = {}
    for f, x in _layers(g).items():
        fields[f] = select(inside, x[order], jnp.asarray(blank[f], x.dtype))
    return g.replace(**fields)


def heritable(g: Genome, gates_now, lamarckian: bool, assimilate_at: float) -> Genome:
    """What a parent passes on: its inherited layers, plus developmental layers whose gate opened past
    `assimilate_at` (genetic assimilation). Gates: the end-of-life values where `lamarckian` (and always
    for assimilated layers), else the inherited ones."""
    opened = jnp.abs(jnp.tanh(gates_now)).max(-1) >= assimilate_at
    keep = g.active & (~g.developmental | opened)
    gates = jnp.where((g.developmental | lamarckian)[:, None], gates_now, g.gates)
    out = compact(g.replace(gates=jnp.where(g.active[:, None], gates, 0.0)), keep)
    return out.replace(developmental=jnp.zeros_like(g.developmental), noise_unit=jnp.full_like(g.noise_unit, -1),
                       noise_layer=jnp.full_like(g.noise_layer, -1))


def crossover(key, g1: Genome, g2: Genome) -> Genome:
    """One-point crossover of layer lists: g1's layers before a cut, then g2's from a cut on
    (truncated to L). Each unit gene (encoder, head, drive) comes from either parent at random.
    A child keeps at least one layer when a parent has one (as `mutate` never deletes the last):
    cuts that take none (before all of g1's, after all of g2's) keep g1's first layer, or g2's last."""
    k1, k2, k3 = jax.random.split(key, 3)
    n1, n2 = g1.length, g2.length
    c1 = jax.random.randint(k1, (), 0, n1 + 1)
    c2 = jax.random.randint(k2, (), 0, n2 + 1)
    empty = (c1 == 0) & (c2 == n2)
    c1 = jnp.where(empty & (n1 > 0), 1, c1)
    c2 = jnp.where(empty & (n1 == 0), jnp.maximum(n2 - 1, 0), c2)
    l_max = g1.active.shape[0]
    j = jnp.arange(l_max)
    src2 = jnp.clip(c2 + j - c1, 0, l_max - 1)
    from1 = j < c1
    length = jnp.minimum(c1 + n2 - c2, l_max)
    inside = j < length
    blank = _blank_layer(g1)
    fields = {}
    for f in LAYER_FIELDS:
        a, b = getattr(g1, f), getattr(g2, f)
        fields[f] = select(inside, select(from1, a, b[src2]), jnp.asarray(blank[f], a.dtype))
    from2 = jax.random.bernoulli(k3, shape=g1.unit_slot.shape)
    return g1.replace(unit_slot=jnp.where(from2, g2.unit_slot, g1.unit_slot),
                      unit_id=jnp.where(from2, g2.unit_id, g1.unit_id), **fields)


# --------------------------------------------------------------------------- choosing genes


def related(bank: gp.GeneBank, slot):
    """[G] bool: the gene's siblings, parent and children (genes one split away), itself excluded."""
    gid, pid = bank.gene_id[slot], bank.parent_id[slot]
    rel = ((bank.parent_id == pid) & (pid >= 0)) | (bank.parent_id == gid) | ((bank.gene_id == pid) & (pid >= 0))
    return rel & bank.alive & (jnp.arange(bank.capacity) != slot)


def pick_layer_gene(key, bank: gp.GeneBank, role, weights):
    """A layer gene by `weights` (frequencies) among living genes of `role`; any role if none."""
    same = (gp.roles(bank) == role) & bank.alive
    w = weights * same
    return gp.sample(key, bank, (), jnp.where(w.sum() > 0, w, weights))


def sample_genome(key, pool: gp.GenePool, depth: int, l_max: int, gate: float, by_freq: bool) -> Genome:
    """A fresh genome of `depth` layers: genes drawn by frequency (or uniformly), gates `gate`."""
    ku, kl = jax.random.split(key)
    w = (lambda b: b.freq) if by_freq else (lambda b: None)
    units = jnp.stack([gp.sample(k, pool.bank(kind), (), w(pool.bank(kind)))
                       for k, kind in zip(jax.random.split(ku, len(gp.UNITS)), gp.UNITS)])
    lb = pool.bank("layer")
    layers = gp.sample(kl, lb, (l_max,), w(lb))
    active = jnp.arange(l_max) < depth
    return empty(l_max).replace(
        unit_slot=units, unit_id=_unit_ids(pool, units),
        layer_slot=jnp.where(active, layers, 0), layer_id=jnp.where(active, lb.gene_id[layers], -1),
        active=active, gates=jnp.where(active[:, None], jnp.full((l_max, 2), gate, jnp.float32), 0.0),
    )


def _units_by_freq(key, pool: gp.GenePool):
    """[U] a unit gene of each kind drawn by frequency."""
    return jnp.stack([gp.sample(k, pool.bank(kind), (), pool.bank(kind).freq)
                      for k, kind in zip(jax.random.split(key, len(gp.UNITS)), gp.UNITS)])


def mutate(key, g: Genome, pool: gp.GenePool, gcfg) -> Genome:
    """Swap genes (for a relative or a gene of the same role, by frequency), delete a layer,
    insert one (gate alpha 0: the child's function is unchanged by it), perturb the gates."""
    ks = jax.random.split(key, 12)
    lb = pool.bank("layer")
    l_max = g.active.shape[0]

    # Swap each layer gene with probability p_swap: half the time for a relative, else by role.
    def swap_one(k, slot, position, length):
        k1, k2, k3 = jax.random.split(k, 3)
        rel = related(lb, slot)
        use_rel = jax.random.bernoulli(k1) & rel.any()
        by_rel = gp.sample(k2, lb, (), lb.freq * rel)
        by_role = pick_layer_gene(k3, lb, gp.role_at(position, length), lb.freq)
        return jnp.where(use_rel, by_rel, by_role)

    swap = jax.random.bernoulli(ks[0], gcfg.p_swap, (l_max,)) & g.active
    new_slot = jax.vmap(swap_one, in_axes=(0, 0, 0, None))(
        jax.random.split(ks[1], l_max), g.layer_slot, jnp.arange(l_max), g.length)
    slot = jnp.where(swap, new_slot, g.layer_slot)
    g = g.replace(layer_slot=slot, layer_id=jnp.where(g.active, lb.gene_id[slot], -1))

    # Swap each unit gene (encoder, head, drive) with probability p_swap for one drawn by frequency.
    units = jnp.where(jax.random.bernoulli(ks[2], gcfg.p_swap, g.unit_slot.shape), _units_by_freq(ks[3], pool),
                      g.unit_slot)
    g = g.replace(unit_slot=units, unit_id=_unit_ids(pool, units))

    # Delete one layer (never the last one left).
    n = g.length
    do_del = jax.random.bernoulli(ks[6], gcfg.p_delete) & (n > 1)
    g = select(do_del, drop_layer_gene(g, jax.random.randint(ks[7], (), 0, jnp.maximum(n, 1))), g)

    # Insert one layer at a random position with its gate closed.
    n = g.length
    p = jax.random.randint(ks[8], (), 0, n + 1)
    new = pick_layer_gene(ks[9], lb, gp.role_at(p, n + 1), lb.freq)
    do_ins = jax.random.bernoulli(ks[10], gcfg.p_insert) & (n < l_max)
    g = select(do_ins, add_layer_gene(g, p, new, lb.gene_id[new]), g)

    noise = gcfg.gate_sigma * jax.random.normal(ks[11], g.gates.shape)
    return g.replace(gates=jnp.where(g.active[:, None], g.gates + noise, 0.0))


def repair(key, g: Genome, pool: gp.GenePool) -> Genome:
    """Replace references to genes that are no longer alive (discarded since the parent lived)."""
    ku, kl = jax.random.split(key)
    lb = pool.bank("layer")
    ok = gp.valid_ref(lb, g.layer_slot, g.layer_id) | ~g.active
    fresh = jax.vmap(lambda k, i: pick_layer_gene(k, lb, gp.role_at(i, g.length), lb.freq))(
        jax.random.split(kl, g.active.shape[0]), jnp.arange(g.active.shape[0]))
    slot = jnp.where(ok, g.layer_slot, fresh)
    units = jnp.where(_units_valid(g, pool), g.unit_slot, _units_by_freq(ku, pool))
    return g.replace(
        layer_slot=jnp.where(g.active, slot, 0), layer_id=jnp.where(g.active, lb.gene_id[slot], -1),
        unit_slot=units, unit_id=_unit_ids(pool, units),
    )


def _units_valid(g: Genome, pool: gp.GenePool):
    """[U] bool: each unit reference still names a living gene."""
    return jnp.stack([gp.valid_ref(pool.bank(k), g.unit_slot[i], g.unit_id[i]) for i, k in enumerate(gp.UNITS)])


def is_valid(g: Genome, pool: gp.GenePool):
    """Every referenced gene is alive with the recorded id; layers are a prefix; gates finite."""
    layers_ok = (gp.valid_ref(pool.bank("layer"), g.layer_slot, g.layer_id) | ~g.active).all()
    prefix = (g.active == (jnp.arange(g.active.shape[0]) < g.length)).all()
    return layers_ok & prefix & _units_valid(g, pool).all() & jnp.isfinite(g.gates).all()


# --------------------------------------------------------------------------- the archive of recent lives


@struct.dataclass
class Archive:
    """A ring buffer of the heritable genomes and fitness of the most recent deaths (tournaments)."""

    genome: Genome  # [R] batched
    fitness: jax.Array  # [R] float32
    agent_id: jax.Array  # [R] int32
    valid: jax.Array  # [R] bool
    next: jax.Array  # int32 write position

    @classmethod
    def zeros(cls, size: int, l_max: int) -> "Archive":
        g = jax.tree.map(lambda x: jnp.broadcast_to(x, (size,) + x.shape), empty(l_max))
        return cls(genome=g, fitness=jnp.zeros(size, jnp.float32), agent_id=jnp.full(size, -1, jnp.int32),
                   valid=jnp.zeros(size, bool), next=jnp.int32(0))

    def push(self, genome: Genome, fitness, agent_id) -> "Archive":
        i = self.next % self.valid.shape[0]
        return self.replace(
            genome=jax.tree.map(lambda b, x: b.at[i].set(x), self.genome, genome),
            fitness=self.fitness.at[i].set(fitness), agent_id=self.agent_id.at[i].set(agent_id),
            valid=self.valid.at[i].set(True), next=self.next + 1,
        )

    def spread(self):
        """Standard deviation of the buffered lives' fitness (1 when fewer than two)."""
        n = self.valid.sum()
        mean = jnp.sum(self.valid * self.fitness) / jnp.maximum(n, 1)
        var = jnp.sum(self.valid * (self.fitness - mean) ** 2) / jnp.maximum(n - 1, 1)
        return jnp.where(n >= 2, jnp.sqrt(var), 1.0)

    def quantile(self, fitness):
        """Share of the buffered lives with lower fitness (ties count half); 0.5 when empty."""
        n = self.valid.sum()
        below = jnp.sum(self.valid & (self.fitness < fitness)) + 0.5 * jnp.sum(self.valid & (self.fitness == fitness))
        return jnp.where(n > 0, below / jnp.maximum(n, 1), 0.5)

"""The gene pool's evolution strategy, in the evosax style: pure functions over an explicit
`GenePool` (checkpointing the pool is saving that pytree).

  tell    the lives that ended this step -> lifetime fitness credited to the genes they
          carried; each life's perturbation of its genes (lamarckian: its learned change;
          darwinian: its birth mutation) into the genes' ES accumulators, weighted by its
          rank among recent lives; its heritable genome into the archive of recent lives;
          every update_every steps: improve, discard, split, frequencies (dynamics.py)
  ask     newborn genomes: parents by tournament among the living and the archive (or a
          slot's own last life, `home`: ecological inheritance),
          one-point crossover, repair, mutation, immigrants, copy indices of mutated genes
  gather  a genome -> the inherited weights of its genes (flat; plus the carrier's mutation
          of each gene that moves by birth mutations)
  offer_layer  development: a position and a layer gene for a growing genome

Which genes move by birth mutations (`by_mutation`): every kind when darwinian; when
lamarckian, the kinds that lifetime learning never changes (the drives: what an agent wants
is inherited, not learned), since they have no learned change to inherit.

Broken lives never reach `tell`. Floats come in as the traced `hp` (a GenePoolConfig); this
object holds the static sizes and switches only. Nothing here knows what an agent is.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from evodevo.config import GenePoolConfig, statics
from evodevo.genepool import dynamics
from evodevo.genepool import genome as gn
from evodevo.genepool import pool as gp
from evodevo.genepool.fitness import credit_fitness, lifetime_fitness
from evodevo.genepool.genome import Genome
from evodevo.treeutil import row, select


@struct.dataclass
class Lives:
    """Every slot's life as it stands this step ([N] leading axis): `ended` marks the lives that
    ended and are credited (died, not broken), `living` those that go on."""

    ended: jax.Array  # [N] bool
    living: jax.Array  # [N] bool
    genome: Genome  # [N] genomes (with the layers grown in during life)
    gates: jax.Array  # [N, L, 2] gate alphas now
    fitness: jax.Array  # [N] lifetime fitness so far
    lifespan: jax.Array  # [N] int32 age
    agent_id: jax.Array  # [N] int32
    # slot -> that life's learned change of its genes as flat genes {kind: [(L,) P]} (lamarckian);
    # a function, so that only the lives that ended pay for it
    change: Callable[[jax.Array], dict] = struct.field(pytree_node=False)


class GeneStrategy:
    def __init__(self, cfg: GenePoolConfig, genes: dict, l_max: int, init_depth: int, learned: tuple):
        """`genes`: {kind: key -> a fresh random gene's named tensors} for every kind in KINDS;
        `learned`: the kinds that lifetime learning changes."""
        self.cfg = statics(cfg)
        self.by_mutation = {"darwinian": gp.KINDS, "frozen": ()}.get(
            cfg.improve, tuple(k for k in gp.KINDS if k not in learned))
        self.l_max, self.init_depth = l_max, init_depth
        # Drive genes (reward weights, an instinct) mutate at their founders' scale: their size means something.
        self.layouts = {k: gp.GeneLayout.of(genes[k], fixed=k == "drive") for k in gp.KINDS}
        self.init_fns = {k: (lambda key, k=k: self.layouts[k].ravel(genes[k](key))) for k in gp.KINDS}
        self.capacity = {"encoder": cfg.encoder_genes, "layer": cfg.layer_genes, "head": cfg.head_genes,
                         "drive": cfg.drive_genes}

    # ------------------------------------------------------------------ construction

    def init(self, hp: GenePoolConfig, key) -> gp.GenePool:
        founders = {k: max(1, int(round(c * self.cfg.init_fill))) for k, c in self.capacity.items()}
        archive = gn.Archive.zeros(self.cfg.recent_dead, self.l_max)
        sigma = {k: hp.sigma_drive if k == "drive" else hp.sigma_init for k in gp.KINDS}
        return gp.init_pool(key, self.capacity, founders, self.init_fns, sigma, archive)

    def fresh_genome(self, pool: gp.GenePool, key, by_freq: bool, gate) -> Genome:
        """A genome of init_depth layers drawn from the pool (by frequency, or uniformly)."""
        return gn.sample_genome(jax.random.fold_in(key, 1), pool, self.init_depth, self.l_max, gate, by_freq)

    # ------------------------------------------------------------------ reading genes

    def gather(self, pool: gp.GenePool, genome: Genome) -> dict:
        """One genome's inherited weights as flat genes {unit kind: [P], "layer": [L, P]}
        (plus the carrier's mutation of each gene that moves by birth mutations)."""
        genes = {k: pool.bank(k).params[genome.slot(k)] for k in gp.UNITS}
        genes["layer"] = pool.bank("layer").params[genome.layer_slot]
        mutations = self.mutations(pool, genome)
        return {k: g + mutations[k] if k in mutations else g for k, g in genes.items()}

    def mutations(self, pool: gp.GenePool, genome: Genome) -> dict:
        """A carrier's mutation of each gene it carries of the kinds in `by_mutation` (zero where it
        has none), as flat genes. Regenerated from (gene id, copy index): nothing is stored per agent."""
        def one(kind, slot, gene_id, index):
            bank = pool.bank(kind)
            eps = gp.mutation_noise(bank.params[slot], gp.copy_key(pool, gene_id, index), bank.sigma[slot],
                                    self.layouts[kind])
            return jnp.where(index >= 0, gp.noise_sign(index), 0.0) * eps

        out = {k: one(k, genome.unit_slot[i], genome.unit_id[i], genome.noise_unit[i])
               for i, k in enumerate(gp.UNITS) if k in self.by_mutation}
        if "layer" in self.by_mutation:
            out["layer"] = jax.vmap(lambda s, i, k: one("layer", s, i, k))(
                genome.layer_slot, genome.layer_id, genome.noise_layer)
        return out

    def carriers(self, genomes: Genome, living) -> dict:
        """{kind: [G] int32} living genomes carrying each gene (a gene twice in a genome counts once)."""
        on = living[:, None]
        out = {k: gp.carriers(self.capacity[k], genomes.slot(k)[:, None], on) for k in gp.UNITS}
        out["layer"] = gp.carriers(self.capacity["layer"], genomes.layer_slot, genomes.active & on)
        return out

    def fitness(self, hp: GenePoolConfig, pool: gp.GenePool, ages, progress, achievements):
        """[N] lifetime fitness of lives of `ages` steps (so far for the living, final for the dead)."""
        return lifetime_fitness(hp, ages, pool, progress, achievements.sum(-1))

    def heritable(self, hp: GenePoolConfig, genome: Genome, gates) -> Genome:
        """What a parent with these gate alphas passes on (see genome.heritable)."""
        return gn.heritable(genome, gates, self.cfg.improve == "lamarckian", hp.assimilate_at)

    # ------------------------------------------------------------------ tell

    def tell(self, hp: GenePoolConfig, pool: gp.GenePool, lives: Lives, step, key) -> gp.GenePool:
        """Credit the lives that ended (a loop over those only), then, every update_every steps,
        the pool's dynamics with the living as carriers."""
        order = jnp.nonzero(lives.ended, size=lives.ended.shape[0], fill_value=0)[0]
        pool = jax.lax.fori_loop(0, lives.ended.sum(), lambda i, p: self._tell_one(hp, p, lives, order[i]), pool)
        if not self.cfg.evolve:
            return pool
        return jax.lax.cond(
            step % self.cfg.update_every == 0,
            lambda p: dynamics.update_pool(p, self.carriers(lives.genome, lives.living), step, key, hp, self.layouts),
            lambda p: p, pool)

    def _tell_one(self, hp: GenePoolConfig, pool: gp.GenePool, lives: Lives, slot) -> gp.GenePool:
        """The finished life in `slot`: credit, its ES contribution, and a place in the archive."""
        life = row(lives, slot)
        g = life.genome
        pool = credit_fitness(pool, g, life.fitness, life.lifespan)
        if self.cfg.evolve and self.cfg.improve != "frozen":
            u = 2.0 * pool.archive.quantile(life.fitness) - 1.0  # centred rank among recent lives, in [-1, 1]
            # Learned kinds (lamarckian) move toward what the fitter half learned; the others by
            # antithetic ES over the birth mutations (founders and immigrants carry none).
            learned = lives.change(slot) if len(self.by_mutation) < len(gp.KINDS) else {}
            change = dict(learned, **self.mutations(pool, g))
            w = jnp.maximum(u, 0.0)
            unit_w = {k: u * (g.noise_unit[i] >= 0) if k in self.by_mutation else w for i, k in enumerate(gp.UNITS)}
            layer_w = u * (g.noise_layer >= 0) if "layer" in self.by_mutation else w * g.active
            banks = {k: gp.accumulate(pool.bank(k), g.unit_slot[i][None], change[k][None], unit_w[k][None])
                     for i, k in enumerate(gp.UNITS)}
            banks["layer"] = gp.accumulate(pool.bank("layer"), g.layer_slot, change["layer"], layer_w)
            pool = pool.replace(banks=banks)
        archive = pool.archive.push(self.heritable(hp, g, life.gates), life.fitness, life.agent_id)
        return pool.replace(archive=archive)

    # ------------------------------------------------------------------ ask

    def ask(self, hp: GenePoolConfig, pool: gp.GenePool, parents: Lives, born, key, gate):
        """Genomes for the slots `born` ([N] bool; others get a genome too, to be ignored) and their
        parents' agent ids ([N, 2], -1 where none). The living of `parents` are candidates; so are the
        archive's recent lives. Returns (pool, genomes, parent ids): newborns take the next copy
        index of each gene they carry of the kinds that move by birth mutations. A step without
        births skips all of it."""
        none = jnp.full((born.shape[0], 2), -1, jnp.int32)
        return jax.lax.cond(born.any(), lambda p: self._ask(hp, p, parents, born, key, gate),
                            lambda p: (p, parents.genome, none), pool)

    def _ask(self, hp: GenePoolConfig, pool: gp.GenePool, parents: Lives, born, key, gate):
        keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(born.shape[0]))
        none = jnp.full((born.shape[0], 2), -1, jnp.int32)
        if not self.cfg.evolve:
            return pool, jax.vmap(lambda k: self.fresh_genome(pool, jax.random.split(k, 7)[0], False, gate))(keys), none
        living = jax.vmap(lambda g, x: self.heritable(hp, g, x))(parents.genome, parents.gates)
        genomes, ids = jax.vmap(self._reproduce, in_axes=(None, None, None, 0, None, 0))(
            hp, pool, parents.replace(genome=living), keys, gate, jnp.arange(born.shape[0]))
        if self.by_mutation:
            pool, genomes = self.assign_copies(pool, genomes, born)
        return pool, genomes, ids

    def _reproduce(self, hp: GenePoolConfig, pool: gp.GenePool, parents: Lives, key, gate, slot):
        """One newborn's genome, for `slot`, and its parents' agent ids ([2], -1 where none).
        Ecological inheritance (`home`): the life that just ended in this slot, if at least as fit as
        the recent mean, is the first parent with probability `home`: what a lineage made of its world
        (a hedge of plants, say) then stays with its descendants, so selection can see it."""
        ks = jax.random.split(key, 7)
        archive = pool.archive
        n = parents.living.shape[0]
        cand = jnp.concatenate([parents.living, archive.valid]).astype(jnp.float32)
        fit = jnp.concatenate([parents.fitness, archive.fitness])
        ids = jnp.concatenate([parents.agent_id, archive.agent_id])
        p = jnp.where(cand.sum() > 0, cand, 1.0)

        def tournament(k):
            idx = jax.random.choice(k, cand.shape[0], (self.cfg.tournament,), p=p / p.sum())
            return idx[jnp.argmax(fit[idx])]

        def parent(i):
            return select(i < n, row(parents.genome, jnp.minimum(i, n - 1)), row(archive.genome, jnp.maximum(i - n, 0)))

        # a fold_in, not an eighth split: with home = 0 every other draw stays as it was
        home = (parents.ended[slot] & (parents.fitness[slot] >= pool.fit_mean)
                & jax.random.bernoulli(jax.random.fold_in(key, 7), hp.home))
        i1, i2 = jnp.where(home, slot, tournament(ks[1])), tournament(ks[2])
        cross = jax.random.bernoulli(ks[3], hp.crossover)
        p1 = parent(i1)
        child = select(cross, gn.crossover(ks[4], p1, parent(i2)), p1)
        child = gn.mutate(ks[5], gn.repair(ks[6], child, pool), pool, hp)
        immigrant = (jax.random.bernoulli(ks[0], hp.immigrants) | (cand.sum() == 0)) & ~home
        genome = select(immigrant, self.fresh_genome(pool, ks[0], True, gate), child)
        parent_ids = jnp.where(immigrant, -1, jnp.stack([ids[i1], jnp.where(cross, ids[i2], -1)]))
        return genome, parent_ids

    def assign_copies(self, pool: gp.GenePool, genomes: Genome, born):
        """Each newborn takes the next mutated-copy index of every gene it carries of the kinds in
        `by_mutation`, in slot order (copies 2j and 2j+1 of a gene are an antithetic pair)."""
        def take(bank, slots, on):
            slots, on = slots.reshape(-1), on.reshape(-1)
            hits = (slots[:, None] == jnp.arange(bank.capacity)[None, :]) & on[:, None]  # [uses, G]
            before = (jnp.cumsum(hits, axis=0) - hits)[jnp.arange(slots.shape[0]), slots]
            index = jnp.where(on, bank.births[slots] + before, -1)
            return bank.replace(births=bank.births + hits.sum(0, dtype=jnp.int32)), index

        banks, index = {}, []
        for k in gp.UNITS:
            banks[k], i = take(pool.bank(k), genomes.slot(k), born & (k in self.by_mutation))
            index.append(i)
        banks["layer"], i_layer = take(pool.bank("layer"), genomes.layer_slot,
                                       genomes.active & born[:, None] & ("layer" in self.by_mutation))
        genomes = genomes.replace(noise_unit=jnp.stack(index, -1), noise_layer=i_layer.reshape(genomes.active.shape))
        return pool.replace(banks=banks), genomes

    # ------------------------------------------------------------------ development

    def offer_layer(self, pool: gp.GenePool, genome: Genome, key):
        """A position p in a growing genome and a layer gene for it (by frequency, among genes whose
        role fits p). Returns (genome with the layer inserted as developmental, p, its flat weights)."""
        k_pos, k_gene = jax.random.split(key)
        lb = pool.bank("layer")
        n = genome.length
        p = jax.random.randint(k_pos, (), 0, n + 1)
        weights = lb.freq if self.cfg.evolve else jnp.ones_like(lb.freq)
        slot = gn.pick_layer_gene(k_gene, lb, gp.role_at(p, n + 1), weights)
        genome = gn.add_layer_gene(genome, p, slot, lb.gene_id[slot], gate=0.0, developmental=True)
        return genome, p, lb.params[slot]

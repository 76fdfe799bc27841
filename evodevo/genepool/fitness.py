"""Lifetime fitness and its credit to the genes a life carried.

Fitness kinds (`genepool.fitness`):
  survival      lifespan relative to contemporaries: lifespan / running mean lifespan of recent
                lives (natural selection; the default)
  progress      survival + w_progress x intrinsic learning progress (the relative fall of the
                agent's forward-prediction loss from its first steps to its last)
  achievements  Craftax achievements unlocked in the life: a labelled comparison, never the default
"""

from __future__ import annotations

import jax.numpy as jnp

from evodevo.genepool import pool as gp
from evodevo.genepool.genome import Genome

LIFE_WINDOW = 256  # the running means of lifespan and fitness weigh about this many recent lives


def lifetime_fitness(gcfg, age, pool: gp.GenePool, progress, achievements):
    """Fitness of lives of `age` steps (so far, for the living; final, for the dead)."""
    yardstick = jnp.where(pool.life_count > 0, pool.life_mean, jnp.maximum(age, 1).astype(jnp.float32))
    survival = age / jnp.maximum(yardstick, 1.0)
    if gcfg.fitness == "survival":
        return survival
    if gcfg.fitness == "progress":
        return survival + gcfg.w_progress * progress
    return achievements.astype(jnp.float32)


def credit_fitness(pool: gp.GenePool, genome: Genome, fitness, lifespan) -> gp.GenePool:
    """Credit one finished life to every gene it carried (each gene once per life; layer genes also
    record the relative depths they were used at) and update the pool's running means."""
    depth = jnp.where(genome.active, gp.relative_depth(jnp.arange(genome.active.shape[0]), genome.length), 0.0)
    lb = pool.bank("layer")
    layers = jnp.zeros(lb.capacity, bool).at[genome.layer_slot].max(genome.active)
    d_sum = jnp.zeros(lb.capacity).at[genome.layer_slot].add(depth)
    d_n = jnp.zeros(lb.capacity).at[genome.layer_slot].add(genome.active.astype(jnp.float32))

    count = pool.life_count + 1
    rate = jnp.maximum(1.0 / count, 1.0 / LIFE_WINDOW)
    return pool.replace(
        banks={"layer": gp.credit(lb, layers, fitness, d_sum, d_n),
               **{k: gp.credit(pool.bank(k), jnp.arange(pool.bank(k).capacity) == genome.slot(k), fitness)
                  for k in gp.UNITS}},
        life_count=count,
        life_mean=pool.life_mean + rate * (lifespan - pool.life_mean),
        fit_mean=pool.fit_mean + rate * (fitness - pool.fit_mean),
    )

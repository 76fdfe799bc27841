"""Pool dynamics, run every `genepool.update_every` steps inside the jitted step.

For each bank, in order:
  improve    the evolution-strategies step: each gene moves by es_lr times the mean of the
             fitness-weighted perturbations its carriers contributed since the last update
             (lamarckian: their lifetime learning; darwinian: their birth mutations)
  discard    reliably unfit genes (enough lives, bottom fraction) with no living carriers
  split      reliably fit genes (enough lives since their last split, top fraction) become two
             where the bank has room: a copy plus noise at a self-adapted scale
  frequencies  replicator dynamics with diffusion: x <- x exp(eta (f - f_bar) / s), s the spread
             of lifetime fitness between lives, renormalised and mixed with a small uniform term
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evodevo.genepool import pool as gp


def fitness_rank(f, alive):
    """[G] share of the other living genes with lower f (ties count half), in [0, 1]; a gene
    alone in its bank ranks 1 (it is the best there is)."""
    lower = (f[None, :] < f[:, None]) & alive[None, :]
    ties = (f[None, :] == f[:, None]) & alive[None, :]
    n = alive.sum()
    below = lower.sum(1) + 0.5 * (ties.sum(1) - 1)
    return jnp.where(alive, jnp.where(n > 1, below / jnp.maximum(n - 1, 1), 1.0), 0.0)


def improve(bank: gp.GeneBank, es_lr: float) -> gp.GeneBank:
    scale = es_lr / jnp.maximum(bank.es_n, 1.0) * bank.alive
    return bank.replace(params=bank.params + scale[:, None] * bank.es_sum,
                        es_sum=jnp.zeros_like(bank.es_sum), es_n=jnp.zeros_like(bank.es_n))


def discard(bank: gp.GeneBank, f, rank, carriers, gcfg):
    """Free the slots of reliably unfit genes without carriers. Returns (bank, discarded [G] bool)."""
    cand = bank.alive & (bank.count >= gcfg.n_min) & (rank <= gcfg.discard_bottom) & (carriers == 0)
    allowed = jnp.maximum(bank.alive.sum() - gp.MIN_ALIVE, 0)
    order = jnp.argsort(jnp.where(cand, f, jnp.inf))  # least fit first
    position = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0]))
    gone = cand & (position < allowed)
    return bank.replace(alive=bank.alive & ~gone, freq=jnp.where(gone, 0.0, bank.freq)), gone


def split(bank: gp.GeneBank, f, rank, discarded, key, step, next_id, history: gp.Ancestry, kind: int, gcfg,
          layout: gp.GeneLayout):
    """Copy reliably fit genes into free slots (fittest first). Returns (bank, next_id, history, n)."""
    cand = bank.alive & ~discarded & (bank.fresh >= gcfg.n_min) & (rank >= 1.0 - gcfg.split_top)
    order = jnp.argsort(jnp.where(cand, -f, jnp.inf))
    free = jnp.nonzero(~bank.alive, size=bank.capacity, fill_value=0)[0]
    n = jnp.minimum(cand.sum(), (~bank.alive).sum())

    def one(i, carry):
        bank, next_id, history = carry
        src, dst = order[i], free[i]
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        # Log-normal self-adaptation: mutate the scale first, then the weights with the new scale.
        sigma = bank.sigma[src] * jnp.exp(gcfg.sigma_tau * jax.random.normal(k1))
        parent = bank.params[src]
        params = bank.params.at[dst].set(parent + gp.mutation_noise(parent, k2, sigma, layout))
        half = bank.freq[src] / 2
        d = gp.mean_depth(bank)[src]
        set_ = lambda x, v: x.at[dst].set(jnp.asarray(v, x.dtype))  # noqa: E731
        bank = bank.replace(
            params=params, alive=set_(bank.alive, True), gene_id=set_(bank.gene_id, next_id),
            parent_id=set_(bank.parent_id, bank.gene_id[src]), birth_step=set_(bank.birth_step, step),
            lineage_depth=set_(bank.lineage_depth, bank.lineage_depth[src] + 1),
            count=set_(bank.count, 0), fit_mean=set_(bank.fit_mean, 0.0), fit_m2=set_(bank.fit_m2, 0.0),
            fresh=set_(bank.fresh, 0).at[src].set(0),
            depth_sum=set_(bank.depth_sum, d), depth_n=set_(bank.depth_n, 1.0),  # the parent's role as a prior
            sigma=set_(bank.sigma, sigma), freq=set_(bank.freq, half).at[src].set(half),
            births=set_(bank.births, 0), es_sum=bank.es_sum.at[dst].set(0.0),
            es_n=set_(bank.es_n, 0.0),
        )
        h = next_id % gp.ANCESTRY_SIZE
        history = history.replace(
            gene_id=history.gene_id.at[h].set(next_id), parent_id=history.parent_id.at[h].set(bank.parent_id[dst]),
            kind=history.kind.at[h].set(jnp.int8(kind)), birth_step=history.birth_step.at[h].set(step),
            end_step=history.end_step.at[h].set(-1),
        )
        return bank, next_id + 1, history

    bank, next_id, history = jax.lax.fori_loop(0, n, one, (bank, next_id, history))
    return bank, next_id, history, n


def replicate(bank: gp.GeneBank, f, eta: float, mix: float, spread) -> gp.GeneBank:
    """Replicator step on the frequencies plus diffusion. The fitness difference is measured in
    units of `spread`, the standard deviation of lifetime fitness between single lives (the
    noise a gene's mean is estimated against), so eta ~ 1 is a moderate step: a gene whose
    carriers live one spread longer than the average grows by a factor e per update."""
    alive = bank.alive
    x = jnp.where(alive, bank.freq, 0.0)
    x = x / jnp.maximum(x.sum(), 1e-30)
    f_bar = jnp.sum(x * f)
    x = x * jnp.exp(jnp.clip(eta * (f - f_bar) / (spread + 1e-6), -20.0, 20.0))
    x = jnp.where(alive, x, 0.0)
    x = x / jnp.maximum(x.sum(), 1e-30)
    x = (1.0 - mix) * x + mix * alive / jnp.maximum(alive.sum(), 1)
    return bank.replace(freq=x)


def update_pool(pool: gp.GenePool, carriers: dict, step, key, gcfg, layouts: dict) -> gp.GenePool:
    """One round of pool dynamics over every bank (see the module doc)."""
    next_id, history = pool.next_id, pool.history
    banks, splits, discards = {}, [], []
    spread = pool.archive.spread()
    for i, (kind, k) in enumerate(zip(gp.KINDS, jax.random.split(key, len(gp.KINDS)))):
        bank = pool.bank(kind)
        if gcfg.improve != "frozen":
            bank = improve(bank, gcfg.es_lr)
        f = gp.shrunk_fitness(bank, pool.fit_mean, gcfg.shrink_k)
        rank = fitness_rank(f, bank.alive)
        bank, gone = discard(bank, f, rank, carriers[kind], gcfg)
        ended = jnp.where(gone, bank.gene_id % gp.ANCESTRY_SIZE, gp.ANCESTRY_SIZE)
        history = history.replace(end_step=history.end_step.at[ended].set(step, mode="drop"))
        bank, next_id, history, n_split = split(bank, f, rank, gone, k, step, next_id, history, i, gcfg,
                                                layouts[kind])
        f = gp.shrunk_fitness(bank, pool.fit_mean, gcfg.shrink_k)
        banks[kind] = replicate(bank, f, gcfg.freq_eta, gcfg.freq_mix, spread)
        splits.append(n_split)
        discards.append(gone.sum())
    return pool.replace(
        banks=banks, next_id=next_id, history=history, updates=pool.updates + 1,
        splits=pool.splits + jnp.stack(splits).astype(jnp.int32),
        discards=pool.discards + jnp.stack(discards).astype(jnp.int32),
    )

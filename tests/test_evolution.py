"""Evolution and development: credit, shrinkage, split, discard, replicator frequencies,
crossover and mutation, layer insertion, gene improvement, checkpointed pools, and the
whole loop on the tiny preset (which updates its pool every 25 steps).

Pure pool functions run on hand-built banks of a toy gene ({"w": [3]}); the agent-level
tests share the tiny preset's Simulation with the other test modules.
"""

from __future__ import annotations

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evodevo.agents import development
from evodevo.genepool.strategy import GeneStrategy, Lives
from evodevo.treeutil import row
from evodevo.genepool import dynamics, report
from evodevo.genepool import genome as gn
from evodevo.genepool import pool as gp
from evodevo.genepool.fitness import credit_fitness, lifetime_fitness


from conftest import jitted_forward, tiny_config as tiny  # noqa: E402


GCFG = tiny().genepool  # n_min 3, split_top 0.25, discard_bottom 0.25, ...


def toy_pool(layer_caps=6, founders=4, l_max=3):
    """A pool of toy genes: encoder, layer, head and drive banks of 3 values each, with ids 0.."""
    init = lambda k: jax.random.normal(k, (3,))  # noqa: E731
    caps = {"encoder": 2, "layer": layer_caps, "head": 2, "drive": 2}
    found = {"encoder": 1, "layer": founders, "head": 1, "drive": 1}
    return gp.init_pool(jax.random.PRNGKey(0), caps, found, {k: init for k in caps}, {k: 0.05 for k in caps}, gn.Archive.zeros(4, l_max))


def genome_of(pool, layer_slots, l_max=3):
    """A genome with the given layer slots (packed) and the pool's first encoder, head and drive."""
    g = gn.empty(l_max)
    n = len(layer_slots)
    slots = jnp.array(list(layer_slots) + [0] * (l_max - n), jnp.int32)
    active = jnp.arange(l_max) < n
    return g.replace(
        unit_slot=jnp.zeros(len(gp.UNITS), jnp.int32),
        unit_id=jnp.stack([pool.bank(k).gene_id[0] for k in gp.UNITS]), layer_slot=slots,
        layer_id=jnp.where(active, pool.bank("layer").gene_id[slots], -1), active=active,
        gates=jnp.where(active[:, None], 1.0, 0.0) * jnp.ones((l_max, 2)),
    )


# --------------------------------------------------------------------------- credit and fitness


def test_credit_on_hand_built_lives():
    pool = toy_pool()
    lives = [([0, 1], 2.0, 100), ([1, 2], 1.0, 50), ([1, 1, 3], 0.0, 30)]  # (layer slots, fitness, lifespan)
    for slots, f, span in lives:
        pool = credit_fitness(pool, genome_of(pool, slots), jnp.float32(f), jnp.float32(span))
    lb = pool.bank("layer")
    # gene 1 carried by all three lives (twice in the third: credited once), fitness 2, 1, 0
    np.testing.assert_array_equal(np.asarray(lb.count), [1, 3, 1, 1, 0, 0])
    np.testing.assert_allclose(np.asarray(lb.fit_mean)[:4], [2.0, 1.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(float(lb.fit_m2[1]), 2.0, atol=1e-6)  # deviations 1, 0, -1
    np.testing.assert_allclose(float(gp.fitness_stderr(lb)[1]), np.sqrt(1.0 / 3.0), rtol=1e-6)
    # relative depths: gene 1 at 3/4 (of 2), 1/4 (of 2), 1/6 and 3/6 (of 3) -> mean over 4 uses
    np.testing.assert_allclose(float(gp.mean_depth(lb)[1]), (0.75 + 0.25 + 1 / 6 + 0.5) / 4, rtol=1e-6)
    assert int(gp.roles(lb)[0]) == 0 and int(gp.roles(lb)[2]) == 2 and int(gp.roles(lb)[4]) == 1  # unknown: mid
    # every life credits the single encoder and head
    assert [int(pool.bank(k).count[0]) for k in gp.UNITS] == [3, 3, 3]  # encoder, head, drive
    # running means: rate 1/count for the first lives
    np.testing.assert_allclose(float(pool.life_mean), 60.0, rtol=1e-6)
    np.testing.assert_allclose(float(pool.fit_mean), 1.0, rtol=1e-6)


def test_shrinkage_and_survival_fitness():
    pool = toy_pool()
    lb = pool.bank("layer").replace(count=jnp.array([0, 1, 4, 12, 0, 0]), fit_mean=jnp.array([0.0, 3.0, 2.0, 0.5, 0, 0]))
    # (n mean + k prior) / (n + k) with k = 4, prior 1
    np.testing.assert_allclose(np.asarray(gp.shrunk_fitness(lb, 1.0, 4.0))[:4],
                               [1.0, (3 + 4) / 5, (8 + 4) / 8, (6 + 4) / 16], rtol=1e-6)
    gcfg = types.SimpleNamespace(fitness="survival")
    first = lifetime_fitness(gcfg, jnp.array([40]), pool, 0.0, jnp.zeros(1))
    assert float(first[0]) == 1.0  # no lives yet: the first life is the yardstick
    later = lifetime_fitness(gcfg, jnp.array([40, 160]), pool.replace(life_count=jnp.int32(5),
                                                                    life_mean=jnp.float32(80.0)), 0.0, jnp.zeros(2))
    np.testing.assert_allclose(np.asarray(later), [0.5, 2.0])


# --------------------------------------------------------------------------- pool dynamics


def test_replicator_update_hand_computed():
    bank = toy_pool().bank("layer").replace(freq=jnp.array([0.5, 0.25, 0.25, 0.0, 0.0, 0.0]),
                                    alive=jnp.array([True, True, True, False, False, False]))
    f = jnp.array([1.0, 2.0, 0.0, 9.0, 0.0, 0.0])
    out = dynamics.replicate(bank, f, eta=0.5, mix=0.1, spread=2.0)
    x = np.array([0.5, 0.25, 0.25])
    fv = np.array([1.0, 2.0, 0.0])
    fbar = (x * fv).sum()  # 1.0
    y = x * np.exp(0.5 * (fv - fbar) / 2.0)
    y = 0.9 * y / y.sum() + 0.1 / 3
    np.testing.assert_allclose(np.asarray(out.freq)[:3], y, rtol=1e-5)
    assert np.all(np.asarray(out.freq)[3:] == 0)  # dead slots keep no frequency
    np.testing.assert_allclose(float(out.freq.sum()), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(gp.entropy(out.freq)), -(y * np.log(y)).sum(), rtol=1e-5)
    lives = gn.Archive.zeros(4, 3).replace(fitness=jnp.array([1.0, 3.0, 9.0, 0.0]),
                                               valid=jnp.array([True, True, False, False]))
    np.testing.assert_allclose(float(lives.spread()), np.std([1.0, 3.0], ddof=1), rtol=1e-6)


def test_discard_never_removes_a_gene_with_living_carriers():
    pool = toy_pool()
    lb = pool.bank("layer").replace(count=jnp.array([10, 10, 10, 10, 0, 0]), fit_mean=jnp.array([0.0, 0.1, 2.0, 3.0, 0, 0]))
    f = gp.shrunk_fitness(lb, 1.0, 0.0)
    rank = dynamics.fitness_rank(f, lb.alive)
    np.testing.assert_allclose(np.asarray(rank)[:4], [0.0, 1 / 3, 2 / 3, 1.0], rtol=1e-6)
    carried = jnp.array([1, 0, 0, 0, 0, 0])  # the least fit gene has a carrier
    gcfg = types.SimpleNamespace(n_min=3, discard_bottom=0.4)
    out, gone = dynamics.discard(lb, f, rank, carried, gcfg)
    assert np.asarray(gone).tolist() == [False, True, False, False, False, False]
    assert bool(out.alive[0]) and not bool(out.alive[1])
    # without carriers both bottom genes go, but never below MIN_ALIVE living genes
    _, gone = dynamics.discard(lb, f, rank, jnp.zeros(6, jnp.int32), types.SimpleNamespace(n_min=3, discard_bottom=0.9))
    assert int(gone.sum()) == 4 - gp.MIN_ALIVE and bool(gone[0]) and bool(gone[1])


def test_split_copies_fit_gene_with_lineage_and_history():
    pool = toy_pool()
    lb = pool.bank("layer").replace(count=jnp.array([10, 10, 10, 10, 0, 0]), fresh=jnp.array([10, 10, 1, 10, 0, 0]),
                            fit_mean=jnp.array([0.0, 1.0, 5.0, 3.0, 0, 0]), freq=jnp.array([0.1, 0.2, 0.3, 0.4, 0, 0]))
    f = gp.shrunk_fitness(lb, 1.0, 0.0)
    rank = dynamics.fitness_rank(f, lb.alive)
    gcfg = types.SimpleNamespace(n_min=3, split_top=0.5, sigma_tau=0.2)
    layout = gp.GeneLayout.of(lambda key: {"w": jnp.zeros(3)})
    out, next_id, hist, n = dynamics.split(lb, f, rank, jnp.zeros(6, bool), jax.random.PRNGKey(1), jnp.int32(77),
                                           pool.next_id, pool.history, 1, gcfg, layout)
    # gene 2 is the fittest but has only 1 fresh life; gene 3 (rank 2/3 >= 0.5) splits into slot 4
    assert int(n) == 1 and np.asarray(out.alive).tolist() == [True] * 5 + [False]
    assert int(out.gene_id[4]) == int(pool.next_id) and int(out.parent_id[4]) == int(lb.gene_id[3])
    assert int(out.birth_step[4]) == 77 and int(out.lineage_depth[4]) == 1 and int(next_id) == int(pool.next_id) + 1
    np.testing.assert_allclose(np.asarray(out.freq)[[3, 4]], [0.2, 0.2])  # the two copies share the frequency
    assert int(out.fresh[3]) == 0 and int(out.count[4]) == 0  # both must prove themselves again
    w_parent, w_child = np.asarray(out.params[3]), np.asarray(out.params[4])
    assert 0 < np.abs(w_child - w_parent).max() < 0.5 * np.abs(w_parent).max()
    h = int(out.gene_id[4]) % gp.ANCESTRY_SIZE
    assert int(hist.parent_id[h]) == int(lb.gene_id[3]) and int(hist.birth_step[h]) == 77 and int(hist.kind[h]) == 1


def test_improve_moves_genes_by_the_mean_weighted_perturbation():
    pool = toy_pool()
    lb = pool.bank("layer")
    d = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 4.0]])
    lb = gp.accumulate(lb, jnp.array([0, 0, 2]), d, jnp.array([1.0, 0.5, 0.0]))  # a zero weight does not count
    out = dynamics.improve(lb, es_lr=0.5)
    # slot 0: (1 x [1, 0, 0] + 0.5 x [0, 2, 0]) / 2 lives x 0.5
    np.testing.assert_allclose(np.asarray(out.params[0] - lb.params[0]), [0.25, 0.25, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(out.params[1:]), np.asarray(lb.params[1:]))
    assert float(jnp.abs(out.es_sum).sum()) == 0 and float(out.es_n.sum()) == 0


# --------------------------------------------------------------------------- genomes


@jax.jit
def _inherit_many(keys, pool, g1, g2):
    gcfg = types.SimpleNamespace(p_swap=0.3, p_insert=0.3, p_delete=0.3, gate_sigma=0.1)

    def one(k):
        k1, k2, k3 = jax.random.split(k, 3)
        child = gn.crossover(k1, g1, g2)
        child = gn.mutate(k3, gn.repair(k2, child, pool), pool, gcfg)
        return child, gn.is_valid(child, pool)

    return jax.vmap(one)(keys)


def test_crossover_and_mutation_keep_genomes_valid():
    pool = toy_pool(layer_caps=6, founders=5)
    g1, g2 = genome_of(pool, [0, 1, 2]), genome_of(pool, [3, 4])
    # gene 4 is discarded since parent 2 lived: its references must be repaired
    lb = pool.bank("layer")
    pool = pool.with_bank("layer", lb.replace(alive=lb.alive.at[4].set(False)))
    children, ok = _inherit_many(jax.random.split(jax.random.PRNGKey(0), 256), pool, g1, g2)
    assert bool(ok.all())
    length = np.asarray(children.active).sum(1)
    # never empty (as mutate never deletes the last layer); the old cut left ~1 child in 12 without layers
    assert length.max() <= 3 and length.min() >= 1 and len(set(length.tolist())) >= 3
    one = jax.vmap(lambda k: gn.crossover(k, genome_of(pool, []), genome_of(pool, [3])).length)(
        jax.random.split(jax.random.PRNGKey(2), 16))
    assert (np.asarray(one) == 1).all()  # an empty parent's child still takes the other's layer
    ids = np.asarray(children.layer_id)[np.asarray(children.active)]
    assert set(ids.tolist()) <= {1, 2, 3, 4}  # layer genes have ids 1..5; slot 4 (id 5) is gone
    assert not gn.is_valid(g2, pool)  # the test could fail: the parent itself is invalid now
    # unit genes (encoder, head, drive) come from either parent
    g2 = g2.replace(unit_slot=jnp.ones_like(g2.unit_slot), unit_id=jnp.stack([pool.bank(k).gene_id[1] for k in gp.UNITS]))
    drives = np.asarray(jax.vmap(lambda k: gn.crossover(k, g1, g2).unit_slot)(jax.random.split(jax.random.PRNGKey(1), 64)))
    assert set(drives[:, gp.UNITS.index("drive")].tolist()) == {0, 1}


def test_heritable_assimilates_opened_developmental_layers():
    pool = toy_pool()
    g = genome_of(pool, [0, 1, 2]).replace(developmental=jnp.array([False, True, True]))
    gates_now = jnp.array([[2.0, 2.0], [0.5, 0.0], [0.1, 0.05]])  # |tanh|: 0.96, 0.46, 0.1
    darwin = gn.heritable(g, gates_now, lamarckian=False, assimilate_at=0.2)
    assert np.asarray(darwin.layer_slot).tolist()[:2] == [0, 1] and int(darwin.length) == 2
    np.testing.assert_allclose(np.asarray(darwin.gates), [[1.0, 1.0], [0.5, 0.0], [0.0, 0.0]])  # inherited; opened
    assert not bool(darwin.developmental.any())
    lamarck = gn.heritable(g, gates_now, lamarckian=True, assimilate_at=0.2)
    np.testing.assert_allclose(np.asarray(lamarck.gates)[0], [2.0, 2.0])


# --------------------------------------------------------------------------- agents


@pytest.fixture(scope="module")
def forward(sim):
    """One step of one agent: (agent, obs, age) -> (tokens out, agent with cache and memory); the forward pass is
    the one compiled for test_agents.py too."""
    ag, dm = sim.kind, sim.kind.dm
    forward = jitted_forward(ag)
    write = jax.jit(ag.write_cache)

    def run(a, obs, t):
        x, k_new, v_new, *_ = forward(a.theta, a, obs, jnp.int32(t - 1), jnp.int32(t), jnp.array([30, 30]),
                                      jnp.zeros(10), a.mem, (a.cache_k, a.cache_v, a.cache_step))
        return x, write(a, k_new, v_new, jnp.int32(t)).replace(mem=x[1 + dm.k:])

    return run


def lives_of(sim, state, ended, fitness, lifespan, agent_id, genomes=None):
    """The gene pool's view of the shared state's lives, `ended` ([N] bool) marking the finished ones."""
    agents = state.agents
    n = sim.n
    return Lives(ended=jnp.asarray(ended), living=~jnp.asarray(ended),
                 genome=state.genomes if genomes is None else genomes, gates=sim.kind.gates(agents),
                 fitness=jnp.full(n, fitness, jnp.float32), lifespan=jnp.full(n, lifespan, jnp.int32),
                 agent_id=jnp.full(n, agent_id, jnp.int32),
                 change=lambda s: sim.kind.learned_change(row(agents, s)))


def test_insertion_leaves_the_output_unchanged(sim, state, forward):
    ag = sim.kind
    agent = row(state.agents, 0)
    k = jax.random.PRNGKey(3)
    obs = jax.random.normal(k, (3, sim.world.obs_dim))
    run = lambda a, t: forward(a, obs[t], t)  # noqa: E731

    x0, agent = run(agent, 0)
    x1, agent = run(agent, 1)
    gene = state.pool.bank("layer").params[1]
    grown = jax.jit(ag.insert_layer)(agent, 1, gene, k)
    assert int(grown.active.sum()) == 3 and bool(grown.developmental[1])
    np.testing.assert_array_equal(np.asarray(ag.gates(jax.tree.map(lambda x: x[None], grown))[0, 1]), [0.0, 0.0])
    before, _ = run(agent, 2)
    after, _ = run(grown, 2)
    np.testing.assert_array_equal(np.asarray(after), np.asarray(before))
    # the same layer with an open gate changes the output: the test above could fail
    theta = grown.theta.at[ag.gate_index[1]].set(1.0)
    opened, _ = run(grown.replace(theta=theta), 2)
    assert float(jnp.abs(opened - before).max()) > 1e-3
    # the pool's side: the genome gains the same layer, marked developmental, at the offered place
    genome = row(state.genomes, 0)
    grown_genome, p, offered = sim.strategy.offer_layer(state.pool, genome, jax.random.PRNGKey(9))
    assert int(grown_genome.length) == 3 and bool(grown_genome.developmental[int(p)])
    slot = int(grown_genome.layer_slot[int(p)])
    np.testing.assert_array_equal(np.asarray(offered), np.asarray(state.pool.bank("layer").params[slot]))


def test_split_copy_computes_nearly_the_same_as_its_parent(sim, state, forward):
    pool = state.pool
    lb = pool.bank("layer")
    lb = lb.replace(fresh=lb.fresh.at[0].set(5), sigma=jnp.full_like(lb.sigma, 0.01))
    f = jnp.where(lb.alive, jnp.arange(lb.capacity) == 0, 0).astype(jnp.float32)
    rank = dynamics.fitness_rank(f, lb.alive)
    gcfg = types.SimpleNamespace(n_min=3, split_top=0.5, sigma_tau=0.0)
    layout = sim.strategy.layouts["layer"]
    lb2, *_ , n = dynamics.split(lb, f, rank, jnp.zeros(lb.capacity, bool), jax.random.PRNGKey(2), jnp.int32(5),
                                 pool.next_id, pool.history, 1, gcfg, layout)
    assert int(n) == 1
    child = int(np.flatnonzero(np.asarray(lb2.alive) & ~np.asarray(lb.alive))[0])
    agent = row(state.agents, 0)
    obs = jax.random.normal(jax.random.PRNGKey(4), (sim.world.obs_dim,))
    outs = []
    for slot in (0, child):
        layers = (layout.unravel(lb2.params[slot]),) + agent.base["layer"][1:]
        outs.append(forward(agent.replace(base=dict(agent.base, layer=layers)), obs, 0)[0])
    diff = float(jnp.abs(outs[0] - outs[1]).max())
    assert 0 < diff < 0.05 * float(jnp.abs(outs[0]).max())
    assert int(lb2.parent_id[child]) == int(lb.gene_id[0])


def test_lamarckian_death_moves_the_gene_toward_the_carriers_learned_weights(sim, state):
    ag, strategy = sim.kind, sim.strategy
    pool = state.pool
    # An archive of poor lives: the dying agent ranks top (weight 1).
    pool = pool.replace(archive=pool.archive.replace(valid=jnp.ones_like(pool.archive.valid),
                                                     fitness=jnp.zeros_like(pool.archive.fitness)))
    agents = state.agents
    theta = agents.theta + 0.01 * jax.random.normal(jax.random.PRNGKey(5), agents.theta.shape)  # some "learning"
    st = state.replace(agents=agents.replace(theta=theta))
    ended = jnp.arange(sim.n) == 0
    tell = jax.jit(strategy.tell, static_argnums=())
    out = tell(sim.hp.genepool, pool, lives_of(sim, st, ended, 5.0, 100, 7), jnp.int32(1), jax.random.PRNGKey(0))
    moved = dynamics.improve(out.bank("layer"), es_lr=1.0)
    genome, agent = row(st.genomes, 0), row(st.agents, 0)
    slot = int(genome.layer_slot[0])
    uses = np.flatnonzero((np.asarray(genome.layer_slot) == slot) & np.asarray(genome.active))
    unravel = ag.unravel_gene["layer"]
    delta = jax.vmap(unravel)(ag.learned_change(agent)["layer"])
    for name in ("wq", "w1"):
        # weight 1 (the top of the recent lives): the gene moves by the mean of its uses' deltas
        expect = unravel(pool.bank("layer").params[slot])[name] + delta[name][uses].mean(0)
        np.testing.assert_allclose(np.asarray(unravel(moved.params[slot])[name]), np.asarray(expect), rtol=1e-5,
                                   atol=1e-6)
        # ... which is the carrier's end-of-life weight: inherited + its low-rank delta A @ B
        a, b = ag.unravel(agent.theta)["delta"]["layer"][name]
        np.testing.assert_allclose(np.asarray(delta[name][0]), np.asarray(a[0] @ b[0]), rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(delta["wq"][0]).max()) > 0
    assert int(out.archive.agent_id[0]) == 7 and float(out.archive.fitness[0]) == 5.0
    assert int(out.life_count) == int(pool.life_count) + 1  # one life told, the living ones not


def test_darwinian_copies_come_in_antithetic_pairs(sim, state):
    cfg = tiny("genepool.improve=darwinian")
    strategy = GeneStrategy(cfg.genepool, sim.kind.genes(), cfg.agents.l_max, cfg.agents.init_depth,
                            sim.kind.learned_kinds())  # no compile
    pool = state.pool
    genomes = state.genomes
    only0 = jnp.arange(sim.n) == 0
    pool1, g1 = strategy.assign_copies(pool, genomes, only0)
    pool2, g2 = strategy.assign_copies(pool1, genomes, only0)
    g1, g2 = row(g1, 0), row(g2, 0)
    assert np.asarray(g1.noise_unit).tolist() == [0, 0, 0] and np.asarray(g2.noise_unit).tolist() == [1, 1, 1]
    e1, e2 = strategy.mutations(pool2, g1), strategy.mutations(pool2, g2)
    for part in ("encoder", "layer", "head", "drive"):
        np.testing.assert_allclose(np.asarray(e1[part] + e2[part]), 0.0, atol=1e-7)
    assert float(jnp.abs(e1["layer"][0]).max()) > 0
    assert float(jnp.abs(e1["layer"][2]).max()) == 0  # inactive slot: no mutation
    # the noise is relative to each tensor's scale: LayerNorm scales (1) move more than biases (0)
    eps = strategy.layouts["layer"].unravel(e1["layer"][0])
    assert float(jnp.abs(eps["ln1_s"]).mean()) > 10 * float(jnp.abs(eps["b1"]).mean())
    # two newborns in one step carrying the same gene take consecutive copies (slot order)
    both = jnp.arange(sim.n) < 2
    _, g12 = strategy.assign_copies(pool, genomes.replace(unit_slot=jnp.zeros_like(genomes.unit_slot)), both)
    assert np.asarray(g12.noise_unit[:, 0])[:2].tolist() == [0, 1] and int(g12.noise_unit[2, 0]) == -1
    # gathering a darwinian genome adds its mutation to the pool's weights
    genes = strategy.gather(pool2, g1)
    np.testing.assert_allclose(np.asarray(genes["encoder"] - pool2.bank("encoder").params[g1.slot("encoder")]),
                               np.asarray(e1["encoder"]), atol=1e-6)

    # A carrier that ranks top contributes +1 x its mutation; a founder (no mutation) nothing.
    pool2 = pool2.replace(archive=pool2.archive.replace(valid=jnp.ones_like(pool2.archive.valid)))
    tell = jax.jit(strategy.tell)
    ended = jnp.arange(sim.n) == 0
    out = tell(cfg.genepool, pool2, lives_of(sim, state, ended, 1.0, 100, 9, genomes=genomes.replace(
        **{f: getattr(genomes, f).at[0].set(getattr(g1, f)) for f in ("noise_unit", "noise_layer")})),
        jnp.int32(1), jax.random.PRNGKey(0))
    enc = out.bank("encoder")
    np.testing.assert_allclose(np.asarray(enc.es_sum[g1.slot("encoder")]), np.asarray(e1["encoder"]), atol=1e-6)
    assert float(enc.es_n[g1.slot("encoder")]) == 1.0
    founder = tell(cfg.genepool, pool2, lives_of(sim, state, ended, 1.0, 100, 9), jnp.int32(1), jax.random.PRNGKey(0))
    assert float(sum(b.es_n.sum() for b in founder.banks.values())) == 0


def test_home_births_hand_a_fit_lives_world_to_its_own_child(sim, state):
    """genepool.home (ecological inheritance): a slot whose life ended at least as fit as the recent
    mean goes to that life's own child; a less fit one's, and every slot with home=0, to a tournament
    winner among the living."""
    import dataclasses

    ended = jnp.arange(sim.n) < 2
    mean = float(state.pool.fit_mean)
    fitness = jnp.full(sim.n, mean).at[0].set(mean + 1.0).at[1].set(mean - 1.0)
    ids = jnp.arange(sim.n, dtype=jnp.int32) + 100
    lives = lives_of(sim, state, ended, 1.0, 100, 0).replace(fitness=fitness, agent_id=ids)
    ask = jax.jit(sim.strategy.ask)
    for home in (1.0, 0.0):
        hp = dataclasses.replace(sim.cfg.genepool, home=home, immigrants=0.0, crossover=0.0)
        for k in range(4):
            _, _, parents = ask(hp, state.pool, lives, ended, jax.random.PRNGKey(k), 0.0)
            p = np.asarray(parents)
            assert (p[0, 0] == 100) == bool(home), p[0]  # the fit life's own child, only with home
            # the unfit life's world goes to a parent from elsewhere (the living or the archive)
            assert p[1, 0] != 101 and p[1, 0] >= 0


# --------------------------------------------------------------------------- the whole loop


def test_pool_evolves_in_the_running_loop_and_checkpoints_exactly(tmp_path, sim, state):
    from evodevo.world.checkpoint import Checkpoints

    s = jax.tree.map(jnp.copy, state)
    # Short lives: every slot dies of old age every 60 steps, so genes gather lives quickly.
    s = s.replace(slots=s.slots.replace(birth_step=jnp.array([-240, -250, -260, -270], jnp.int32)))
    for _ in range(6):
        s, out = sim.run_chunk(s)
    pool = s.pool
    assert int(pool.updates) == 300 // 25 and int(pool.splits.sum()) >= 1
    assert int(pool.life_count) >= 4 and bool(pool.archive.valid.any())
    parents = np.asarray(s.slots.parents)
    assert (parents >= 0).any()  # newborns from tournaments
    lb = pool.bank("layer")
    alive = np.asarray(lb.alive)
    np.testing.assert_allclose(float(np.asarray(lb.freq)[alive].sum()), 1.0, rtol=1e-5)
    g = s.genomes
    ok = jax.vmap(gn.is_valid, in_axes=(0, None))(g, pool)
    assert bool(ok.all())

    ckpt = Checkpoints(tmp_path / "ckpt", keep=1)
    ckpt.save(int(s.step), s, {"step": int(s.step)})
    restored, _, _ = ckpt.restore(state)
    ckpt.close()
    for a, b in zip(jax.tree.leaves(restored.pool), jax.tree.leaves(s.pool)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    view = sim.pool_report(s)
    table = report.top_genes_markdown(view, int(s.step))
    assert table.count("\n") >= 3
    summary = report.summary(view, int(s.step))
    assert summary["living_genes"] == int(sum(np.asarray(b.alive).sum() for b in pool.banks.values()))
    json.dumps(summary)
    image = report.lineage_image(view["history"], int(s.step))
    assert image.ndim == 3 and image.shape[2] == 3 and len(np.unique(image.reshape(-1, 3), axis=0)) > 3


def test_fitness_options():
    pool = toy_pool().replace(life_count=jnp.int32(3), life_mean=jnp.float32(50.0))
    age, progress, achieved = jnp.array([100, 25]), jnp.array([0.5, -0.2]), jnp.array([3, 0])
    f = lambda kind: lifetime_fitness(types.SimpleNamespace(fitness=kind, w_progress=2.0), age, pool,  # noqa: E731
                                      progress, achieved)
    np.testing.assert_allclose(np.asarray(f("survival")), [2.0, 0.5])
    np.testing.assert_allclose(np.asarray(f("progress")), [3.0, 0.1], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(f("achievements")), [3.0, 0.0])


def test_development_triggers():
    cfg = types.SimpleNamespace(develop="plateau", plateau_window=10, develop_age=30)
    hp = types.SimpleNamespace(plateau_tol=0.1)
    lengths = jnp.array([2, 2, 2, 3, 2])
    agents = types.SimpleNamespace(
        active=jnp.arange(3)[None, :] < lengths[:, None],
        loss_ema=jnp.array([1.0, 0.95, 0.5, 1.0, 1.0]), loss_ref=jnp.array([1.0, 1.0, 1.0, 1.0, jnp.inf]))
    ages = jnp.array([20, 20, 20, 20, 10])
    grow, ref = development.triggers(cfg, hp, agents, ages)
    # stalled (1.0 vs 1.0; 0.95 is < 10% better), improved (0.5), no room (3 layers), first check (ref inf)
    assert np.asarray(grow).tolist() == [True, True, False, False, False]
    np.testing.assert_allclose(np.asarray(ref), [1.0, 0.95, 0.5, 1.0, 1.0])
    grow, ref = development.triggers(cfg, hp, agents, jnp.array([21, 20, 0, 20, 10]))
    assert np.asarray(grow).tolist() == [False, True, False, False, False]  # only at multiples of the window
    assert float(ref[0]) == 1.0
    cfg.develop = "age"
    grow, _ = development.triggers(cfg, hp, agents, jnp.array([30, 60, 0, 30, 31]))
    assert np.asarray(grow).tolist() == [True, True, False, False, False]


def test_lamarckian_drives_move_by_birth_mutations(sim, state):
    """Learning never changes a drive gene, so under lamarckian inheritance the drives alone move by
    ES over their carriers' birth mutations, at their own (larger) initial scale."""
    cfg = tiny()
    strategy = GeneStrategy(cfg.genepool, sim.kind.genes(), cfg.agents.l_max, cfg.agents.init_depth,
                            sim.kind.learned_kinds())  # no compile
    assert strategy.by_mutation == ("drive",)
    pool = state.pool  # a fresh pool of this config (an eager strategy.init costs ~6 s here)
    drive, layer = pool.bank("drive"), pool.bank("layer")
    assert np.allclose(np.asarray(drive.sigma)[np.asarray(drive.alive)], cfg.genepool.sigma_drive)
    assert np.allclose(np.asarray(layer.sigma)[np.asarray(layer.alive)], cfg.genepool.sigma_init)
    pool, genomes = strategy.assign_copies(pool, state.genomes, jnp.arange(sim.n) == 0)
    g = row(genomes, 0)
    assert np.asarray(g.noise_unit).tolist() == [-1, -1, 0] and (np.asarray(g.noise_layer) == -1).all()
    eps = strategy.mutations(pool, g)
    assert set(eps) == {"drive"} and float(jnp.abs(eps["drive"]).min()) > 0
    genes, plain = strategy.gather(pool, g), strategy.gather(pool, g.replace(noise_unit=-jnp.ones_like(g.noise_unit)))
    np.testing.assert_allclose(np.asarray(genes["drive"] - plain["drive"]), np.asarray(eps["drive"]), atol=1e-7)
    for k in ("encoder", "head", "layer"):
        assert np.array_equal(np.asarray(genes[k]), np.asarray(plain[k])), k
    # A top-ranked death: its drive mutation (weight +1) enters the drive gene's ES accumulator.
    pool = pool.replace(archive=pool.archive.replace(valid=jnp.ones_like(pool.archive.valid),
                                                     fitness=jnp.zeros_like(pool.archive.fitness)))
    out = strategy._tell_one(sim.hp.genepool, pool, lives_of(sim, state, jnp.arange(sim.n) == 0, 5.0, 100, 7, genomes), 0)
    slot = int(g.unit_slot[gp.UNITS.index("drive")])
    np.testing.assert_allclose(np.asarray(out.bank("drive").es_sum[slot]), np.asarray(eps["drive"]), atol=1e-6)
    assert float(out.bank("drive").es_n[slot]) == 1.0
    # A drive gene mutates at its founder's scale: grown tenfold, its mutation is the same; a layer's grows.
    key = jax.random.PRNGKey(5)
    d0, l0 = drive.params[0], layer.params[0]
    same = [gp.mutation_noise(x, key, 0.5, strategy.layouts["drive"]) for x in (d0, 10 * d0)]
    np.testing.assert_allclose(np.asarray(same[0]), np.asarray(same[1]), rtol=1e-6)
    grows = [jnp.abs(gp.mutation_noise(x, key, 0.5, strategy.layouts["layer"])).mean() for x in (l0, 10 * l0)]
    assert float(grows[1]) > 5 * float(grows[0])

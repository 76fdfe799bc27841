"""Memory that learns, online (agents.memory=learned, `evodevo.agents.memory`), and the frozen default.

The recurrence, its sensitivities and the read are checked on small hand-built arrays (eager, no
compile). One compile serves the learned agent: `learned_run`, steps of act + learn of a tiny
learner with agents.memory=learned on synthetic observations (the first step has nothing to learn),
then the last step again with the write's weights as they were before the update."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evodevo import config
from evodevo.agents import memory
from evodevo.agents.kind import Senses

from conftest import beside_nothing, founders, learner_steps, tiny_config as tiny  # noqa: E402


# --------------------------------------------------------------------------- the recurrence


def test_carried_sensitivities_are_the_jacobian_of_three_steps():
    """On a hand-built 3-step example (M 2, D 3), the sensitivities carried by `step` equal
    jax.jacfwd of the unrolled recurrence; the Jacobian's entries they leave out are all zero."""
    m_units, d = 2, 3
    keys = jax.random.split(jax.random.PRNGKey(4), 4)
    w = jax.random.normal(keys[0], (d, d))
    nu = jnp.array([[-1.0, 0.5, 2.0], [0.0, 3.0, -0.5]])
    hs = jax.random.normal(keys[1], (3, m_units, d)) * 2.0
    m0 = jax.random.normal(keys[2], (m_units, d))  # an earlier memory that no longer depends on (w, nu)

    def unrolled(w, nu):
        m = m0
        for h in hs:
            m, _ = memory.step(w, nu, m, memory.Sensitivity.zeros(m_units, d), h)
        return m

    m, sens = m0, memory.Sensitivity.zeros(m_units, d)
    for h in hs:
        m, sens = memory.step(w, nu, m, sens, h)
    np.testing.assert_allclose(m, unrolled(w, nu), rtol=1e-6)
    j_w, j_nu = jax.jacfwd(unrolled, argnums=(0, 1))(w, nu)  # [M, D, D, D] (m[i, j] / w[k, l]), [M, D, M, D]
    i, k, j = np.meshgrid(np.arange(m_units), np.arange(d), np.arange(d), indexing="ij")
    np.testing.assert_allclose(sens.w, np.asarray(j_w)[i, j, k, j], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sens.nu, np.einsum("ijij->ij", np.asarray(j_nu)), rtol=1e-5, atol=1e-7)
    # the diagonal recurrence: m[i, j] depends on w[:, j] and nu[i, j] only
    off_w = np.asarray(j_w).copy()
    off_w[i, j, k, j] = 0.0
    off_nu = np.asarray(j_nu).copy()
    off_nu[np.arange(m_units)[:, None], np.arange(d), np.arange(m_units)[:, None], np.arange(d)] = 0.0
    assert np.abs(off_w).max() == 0.0 and np.abs(off_nu).max() == 0.0
    assert np.abs(sens.w).min() > 0 and np.abs(sens.nu).min() > 0  # the test could fail


def test_read_is_the_memory_and_its_derivative_the_carried_sensitivities():
    """The read's value is the memory, bit for bit; its pullback contracts the cotangent with the
    carried sensitivities: dL/dW[k, j] = sum_i g[i, j] E[i, k, j], dL/dnu = g * n."""
    keys = jax.random.split(jax.random.PRNGKey(2), 5)
    w, nu = jax.random.normal(keys[0], (4, 4)), jax.random.normal(keys[1], (2, 4))
    m = jax.random.normal(keys[2], (2, 4))
    sens = memory.Sensitivity(w=jax.random.normal(keys[3], (2, 4, 4)), nu=jax.random.normal(keys[4], (2, 4)))
    value, pullback = jax.vjp(lambda w, nu: memory.read(w, nu, m, sens), w, nu)
    np.testing.assert_array_equal(np.asarray(value), np.asarray(m))
    g = jnp.arange(8.0).reshape(2, 4) - 3.0
    g_w, g_nu = pullback(g)
    np.testing.assert_allclose(g_w, np.einsum("ij,ikj->kj", g, sens.w), rtol=1e-6)
    np.testing.assert_allclose(g_nu, g * sens.nu, rtol=1e-6)


# --------------------------------------------------------------------------- the switch


def test_memory_switch_default_and_bad_value():
    assert config.Config().agents.memory == "frozen"
    with pytest.raises(config.ConfigError) as e:
        tiny("agents.memory=lstm")
    assert "agents.memory" in str(e.value) and "\n" not in str(e.value)


def test_frozen_memory_has_no_write_to_learn(sim, state):
    """agents.memory=frozen (the default): no write weights in the genes or the trainable vector,
    no sensitivities in the state, no memory gradient metric; the memory an act hands on is the
    memory tokens' outputs, as before issue #11. memory=learned adds exactly the write's deltas
    (rank r on W [D, D], dense on nu [M, D]), and with M = 0 nothing."""
    from evodevo.agents.learner import Learner

    ag, dm, r = sim.kind, sim.kind.dm, sim.cfg.agents.rank
    assert not ag.learned_memory and state.agents.mem_sens is None
    assert not set(memory.WRITE) & set(ag.genes()["encoder"](jax.random.PRNGKey(0)))
    learned = Learner(tiny("agents.memory=learned").agents, sim.world)  # no compile
    assert learned.n_params - ag.n_params == 2 * dm.d * r + dm.m * dm.d == len(learned.memory_index)
    none = [Learner(tiny("agents.memory_tokens=0", f"agents.memory={m}").agents, sim.world) for m in ("frozen", "learned")]
    assert not none[1].learned_memory and none[1].n_params == none[0].n_params
    h, sens = jnp.arange(6.0).reshape(1, 6), object()
    out, kept = memory.next_memory("frozen", None, jnp.zeros((1, 6)), sens, h)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(h))
    assert kept is sens
    n = sim.n
    senses = Senses(age=jnp.ones(n, jnp.int32), pos=jnp.zeros((n, 2), jnp.int32), prev_action=jnp.zeros(n, jnp.int32),
                    body=jnp.ones((n, 5)), **beside_nothing(n))

    def step(agents):  # shapes only: no compile
        _, agents, pending = ag.act(sim.hp.agents, agents, state.world.obs, senses, jax.random.PRNGKey(0))
        return ag.learn(sim.hp.agents, agents, ag.carry(pending), pending, senses, jnp.zeros(n, bool),
                        jnp.ones(n, bool))[2]

    metrics = jax.eval_shape(step, state.agents)
    assert "grad_norm_memory" not in metrics and "grad_norm_heads" in metrics


def test_evolved_memory_writes_by_the_inherited_write_and_never_learns(sim, state):
    """agents.memory=evolved, the learned write's control: the same units and write in the encoder gene, read
    before the action; the memory an act hands on is the recurrence under the inherited write (`memory.step`'s
    value), with no sensitivities carried and no memory gradient to report (shapes only: no compile)."""
    from evodevo.agents.learner import Learner

    evolved = Learner(tiny("agents.memory=evolved", "agents.memory_write=input").agents, sim.world)
    assert evolved.written_memory and not evolved.learned_memory and evolved.memory_index is None
    assert evolved.dm.read_memory and not sim.kind.dm.read_memory
    enc, dm = evolved.genes()["encoder"](jax.random.PRNGKey(0)), evolved.dm
    assert set(memory.WRITE) <= set(enc)  # the write's deltas are there as learned's (nothing moves them)
    assert evolved.n_params - sim.kind.n_params == 2 * dm.d * sim.cfg.agents.rank + dm.m * dm.d
    m, h = jnp.ones((dm.m, dm.d)), jax.random.normal(jax.random.PRNGKey(1), (dm.m, dm.d))
    out, sens = memory.next_memory("evolved", enc, m, None, h)
    want, _ = memory.step(enc["mem_w"], enc["mem_nu"], m, memory.Sensitivity.zeros(dm.m, dm.d), h)
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-6)
    assert sens is None and np.abs(np.asarray(out - m)).max() > 1e-3  # the write moved the memory
    n = sim.n
    senses = Senses(age=jnp.ones(n, jnp.int32), pos=jnp.zeros((n, 2), jnp.int32), prev_action=jnp.zeros(n, jnp.int32),
                    body=jnp.ones((n, 5)), **beside_nothing(n))
    agents = jax.eval_shape(lambda: founders(evolved, n, jax.random.PRNGKey(3)))
    assert agents.mem_sens is None

    def step(agents):  # shapes only: no compile
        _, agents, pending = evolved.act(sim.hp.agents, agents, state.world.obs, senses, jax.random.PRNGKey(0))
        return evolved.learn(sim.hp.agents, agents, evolved.carry(pending), pending, senses, jnp.zeros(n, bool),
                             jnp.ones(n, bool))

    after, _, metrics = jax.eval_shape(step, agents)
    assert after.mem_sens is None and "grad_norm_memory" not in metrics and "grad_norm_heads" in metrics


def test_memory_control_carries_no_memory_between_steps(sim, state):
    """agents.control=memory, the in-run control of the memory: the rows in the control (`Senses.control`) hand the
    next act a newborn's memory (zeros, and zero sensitivities), the others the recurrence's; with no row in the
    control none is reset. Refused without memory tokens. One compile of the tiny learner's act."""
    from evodevo.agents.learner import Learner

    with pytest.raises(config.ConfigError) as e:
        tiny("agents.control=memory", "agents.memory_tokens=0")
    assert "agents.control" in str(e.value) and "memory_tokens" in str(e.value) and "\n" not in str(e.value)
    m, sens = jnp.ones((3, 2, 4)), memory.Sensitivity(w=jnp.ones((3, 2, 4, 4)), nu=jnp.ones((3, 2, 4)))
    kept, kept_sens = memory.forget(jnp.array([True, False, True]), m, sens)
    assert np.asarray(kept).sum(axis=(1, 2)).tolist() == [0, 8, 0] and float(kept_sens.w[1].min()) == 1.0
    assert float(jnp.abs(kept_sens.w[0]).max() + jnp.abs(kept_sens.nu[2]).max()) == 0.0
    assert memory.forget(None, m, None)[0] is m
    ag = Learner(tiny("agents.control=memory").agents, sim.world)  # the default's frozen memory: the shared state's
    n, control, agents = sim.n, jnp.arange(sim.n) % 2 == 0, state.agents
    senses = Senses(age=jnp.ones(n, jnp.int32), pos=jnp.zeros((n, 2), jnp.int32), prev_action=jnp.zeros(n, jnp.int32),
                    body=jnp.ones((n, 5)), control=control, **beside_nothing(n))
    act = jax.jit(lambda agents, senses: ag.act(sim.hp.agents, agents, state.world.obs, senses, jax.random.PRNGKey(0))[1])
    carried = np.abs(np.asarray(act(agents, senses).mem)).sum(axis=(1, 2))
    assert (carried[np.asarray(control)] == 0).all() and (carried[~np.asarray(control)] > 0).all()
    assert (np.abs(np.asarray(act(agents, senses.replace(control=control & False)).mem)).sum(axis=(1, 2)) > 0).all()


# --------------------------------------------------------------------------- the learned write


STEPS = 3  # act 0 (nothing to learn), then transitions 0 and 1
RECALL = 2  # agents.recall in the learned run: act 2 is asked for the latent of act 0's observation


@pytest.fixture(scope="module")
def learned_run(sim):
    """Steps of act + learn; then step STEPS again, once as is and once with the write's weights
    (their coordinates of theta) put back to what they were before the last update. With recall
    (agents.recall=2), whose asks are kept too."""
    from evodevo.agents.learner import Learner

    ag = Learner(tiny("agents.memory=learned", f"agents.recall={RECALL}").agents, sim.world)
    hp, n, obs_dim = sim.hp.agents, sim.n, sim.world.obs_dim

    step, first_carried = learner_steps(ag, hp, n, obs_dim, lambda t: jnp.full((n, 5), 0.5, jnp.float32))
    agents = founders(ag, n, jax.random.PRNGKey(3))
    prev, seen, carried, asked = jnp.full(n, -1, jnp.int32), [], first_carried(agents), []
    start = time.perf_counter()
    for t in range(STEPS):
        agents, carried, prev, broken, metrics, pending = step(agents, carried, prev, t)
        assert not np.asarray(broken).any()
        seen.append((agents, jax.device_get(metrics)))
        asked.append(jax.device_get({"phi": pending["phi_now"], **{k: v for k, v in pending["out"].items()
                                                                   if k.startswith("recall")}}))
        if t == 0:
            print(f"\nlearned memory: one compile + a step, {time.perf_counter() - start:.1f} s")
    before = seen[-2][0].theta[:, ag.memory_index]
    rewound = agents.replace(theta=agents.theta.at[:, ag.memory_index].set(before))
    again = [step(a, carried, prev, STEPS) for a in (agents, rewound)]
    assert step._cache_size() == 1  # one compiled shape
    asked.append(jax.device_get(again[0][4]))  # the metrics of the transition of act STEPS - 1
    return ag, seen, [a[0] for a in again], asked


def test_first_transition_gets_no_memory_gradient(learned_run):
    """Act 0 read the newborn's empty memory, whose sensitivity is zero: transition 0's gradient of
    the write is exactly zero (pairing act 0's cotangent with act 1's sensitivities would not be),
    so Adam leaves the write's weights as they were."""
    ag, seen, _, _ = learned_run
    (a0, _), (a1, m1) = seen[0], seen[1]
    assert float(jnp.abs(a0.mem_sens.w).min()) > 0  # act 0 wrote a memory with a sensitivity
    assert (m1["grad_norm_memory"] == 0).all() and (m1["grad_norm_heads"] > 0).all()
    np.testing.assert_array_equal(np.asarray(a1.theta[:, ag.memory_index]), np.asarray(a0.theta[:, ag.memory_index]))


def test_gradient_reaches_the_memory_write_and_the_memory_changes_with_it(learned_run):
    """Transition 1 (act 1 read the memory act 0 wrote): the write's gradient is finite and non-zero
    for every agent, the write's weights move, and the memory the next act writes moves with them
    (all else equal: the rewound run differs from it in the write's weights only)."""
    ag, seen, (mem_after, mem_before), _ = learned_run
    (a1, _), (a2, m2) = seen[1], seen[2]
    g = m2["grad_norm_memory"]
    assert np.isfinite(g).all() and (g > 0).all()
    moved = np.abs(np.asarray(a2.theta[:, ag.memory_index] - a1.theta[:, ag.memory_index])).max(-1)
    assert (moved > 0).all()
    after, before = np.asarray(mem_after.mem), np.asarray(mem_before.mem)
    assert np.isfinite(after).all() and np.isfinite(before).all()
    assert (np.abs(after - before).reshape(len(after), -1).max(-1) > 0).all()
    np.testing.assert_array_equal(np.asarray(mem_after.cache_k), np.asarray(mem_before.cache_k))  # the same act


def test_recall_asks_the_memory_for_the_latent_of_k_steps_ago(learned_run):
    """agents.recall=k: the act at age t >= k is asked for phi0 of the observation at age t - k (a ring
    of the last k latents), acts before that for nothing; the recall loss enters the learning of that
    transition (and is zero before); the recall head is part of the encoder gene."""
    ag, seen, _, asked = learned_run
    assert set(memory.RECALL) <= set(ag.genes()["encoder"](jax.random.PRNGKey(0)))
    assert [float(a["recall_seen"].max()) for a in asked[:STEPS]] == [0.0] * RECALL + [1.0] * (STEPS - RECALL)
    np.testing.assert_array_equal(asked[RECALL]["recall_target"], asked[0]["phi"])
    assert np.abs(asked[RECALL]["phi"] - asked[0]["phi"]).max() > 0  # another observation: the test could fail
    assert (seen[RECALL][1]["loss_recall"] == 0).all()  # transition RECALL - 1: nothing was asked
    assert np.isfinite(asked[-1]["loss_recall"]).all() and (asked[-1]["loss_recall"] > 0).all()
    with pytest.raises(config.ConfigError) as e:
        tiny("agents.recall=4", "agents.memory_tokens=0")
    assert "agents.recall" in str(e.value) and "\n" not in str(e.value)


def test_memory_writes_the_observation_token_the_outputs_or_the_update(sim):
    """agents.memory_write=input: the write reads the step's observation token as it enters the layers,
    the same for every memory unit and whatever memory the step reads (the recurrence is then linear in
    the memory, its RTRL exact); the default (outputs) reads the memory tokens' outputs, which start from
    the memory itself, and update (frozen or learned) those outputs less the tokens' inputs, a state that
    does not carry the memory's magnitude on. Eager, one agent: no compile."""
    from evodevo.agents import transformer as tf
    from evodevo.agents.learner import Learner

    obs = jax.random.normal(jax.random.PRNGKey(1), (sim.world.obs_dim,))
    body = jnp.full(10, 0.5)
    written = {}
    for mode in ("input", "outputs", "update"):
        memory = "frozen" if mode == "update" else "learned"  # the update needs no learned write
        ag = Learner(tiny(f"agents.memory={memory}", f"agents.memory_write={mode}").agents, sim.world)
        agent = jax.tree.map(lambda x: x[0], founders(ag, 1, jax.random.PRNGKey(5)))
        cache = (agent.cache_k, agent.cache_v, agent.cache_step)
        d = jax.random.normal(jax.random.PRNGKey(2), agent.mem.shape)  # not a constant: layer norms remove those
        mems = (agent.mem, agent.mem + d, agent.mem + 1000.0 * d)
        written[mode] = [np.asarray(ag.forward(agent.theta, agent, obs, 2, 3, jnp.array([5, 6]), body, m, cache)[4][2])
                         for m in mems]
        if mode == "input":
            enc, *_ = ag.weights(agent.theta, agent.base)
            token = tf.step_tokens(enc, tf.encode_obs(enc, obs, ag.dm), 2, 3, jnp.array([5, 6]), body, agent.mem, ag.dm)[0]
            assert written[mode][0].shape == (ag.dm.m, ag.dm.d)
            np.testing.assert_allclose(written[mode][0], np.broadcast_to(np.asarray(token), written[mode][0].shape),
                                       rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(*written["input"][:2])  # the memory read does not enter what is written
    assert np.abs(written["outputs"][0] - written["outputs"][1]).max() > 1e-3  # ... as it does with outputs
    # The update is the outputs less the memory tokens' inputs (memory + mem_emb): it depends on the memory
    # read but does not carry it, so a memory 1000 larger leaves it no larger (the outputs carry the 1000 on).
    assert np.abs(written["update"][0] - written["update"][1]).max() > 1e-3
    assert np.abs(written["outputs"][2] - written["outputs"][0]).max() > 500.0
    assert np.abs(written["update"][2]).max() < 10 * np.abs(written["update"][0]).max() + 1.0
    with pytest.raises(config.ConfigError) as e:
        tiny("agents.memory_write=input")  # the default memory (frozen) has no write to choose for
    assert "agents.memory_write" in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- the probe of benchmarks/cognition.py


def test_cognition_probe_scores_what_a_memory_holds_beyond_age(monkeypatch):
    """On synthetic lives (numpy only): a memory holding a past count that age does not tell gains R^2 over
    age on held-out lives; a memory of noise, or one holding only the age, gains about nothing; no memory
    (`none`) gains exactly 0 and scores the age floor."""
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))  # its `ablations`
    cognition = importlib.import_module("cognition")
    rng = np.random.default_rng(0)
    lives, per = 80, 25
    ids = np.repeat(np.arange(lives), per)
    age = np.tile(np.arange(per), lives) + rng.integers(0, 200, lives).repeat(per)
    since = rng.integers(9, 60, lives * per).astype(float)  # steps since an event, independent of age
    target = np.log1p(np.minimum(since, age))
    rows = np.arange(lives * per)

    def rec(x):
        return {"x": x, "age": age, **{k: (rows, np.stack([target, ids], -1)) for k in cognition.TARGETS}}

    noise = rng.normal(size=(lives * per, 8))
    holds = np.concatenate([noise[:, :7], target[:, None] + 0.3 * rng.normal(size=(lives * per, 1))], -1)
    clock = np.concatenate([noise[:, :7], np.log1p(age)[:, None]], -1)
    got = {name: cognition.probe(rec(x)) for name, x in
           (("holds", holds), ("noise", noise), ("clock", clock), ("none", np.zeros((lives * per, 0))))}
    assert got["holds"]["gain"] > 0.3 and got["holds"]["gain"] > 5 * got["holds"]["gain_se"]
    assert abs(got["noise"]["gain"]) < 0.05 and abs(got["clock"]["gain"]) < 0.05
    assert got["none"]["gain"] == 0.0 and got["none"]["r2"] == got["none"]["r2_age"] > 0.0

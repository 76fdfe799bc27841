"""The transformer agent: gates, identities, KV cache, gradients, normalisers, broken agents."""

import copy
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evodevo.agents import transformer as tf
from evodevo.agents.normalize import RewardScale, Welford, normalize, observe

from conftest import beside_nothing, job_report, jitted_forward, shared_simulation, tiny_config as tiny  # noqa: E402


def one_agent(state, i=0):
    return jax.tree.map(lambda x: x[i], state.agents)


def random_inputs(sim, key, steps):
    k1, k2, k3 = jax.random.split(key, 3)
    obs = jax.random.normal(k1, (steps, sim.world.obs_dim))
    act = jax.random.randint(k2, (steps,), -1, sim.world.num_actions)
    pos = jax.random.randint(k3, (steps, 2), 0, 64)
    return obs, act, pos


BODY = jnp.array([1.0, 0.8, 0.6, 1.0, 0.0, 0.0, -0.1, 0.0, 0.0, 0.0])  # an interoception vector


def forward_step(sim, agent, theta, obs, act, age, pos, mem, body=BODY, ag=None):
    """One step of one agent through the learner's forward pass (`ag`, default the shared simulation's), compiled."""
    cache = (agent.cache_k, agent.cache_v, agent.cache_step)
    return jitted_forward(ag or sim.kind)(theta, agent, obs, jnp.int32(act), jnp.int32(age), pos, body, mem, cache)


# --------------------------------------------------------------------------- gates and slots


def test_gate_at_zero_and_inactive_slot_leave_output_unchanged(sim, state):
    ag = sim.kind
    agent = one_agent(state)
    obs, act, pos = random_inputs(sim, jax.random.PRNGKey(1), 1)
    tr = ag.unravel(agent.theta)
    active = agent.active
    assert bool(active[0]) and bool(active[1]) and not bool(active[2])
    x_ref = forward_step(sim, agent, agent.theta, obs[0], act[0], 0, pos[0], agent.mem)[0]

    # Activate slot 2 with its gates at zero: the output must be unchanged (up to float rounding).
    gated = agent.replace(active=active.at[2].set(True))
    tr0 = dict(tr, gates=tr["gates"].at[2].set(0.0))
    theta0 = jax.flatten_util.ravel_pytree(tr0)[0]
    x_gate0 = forward_step(sim, gated, theta0, obs[0], act[0], 0, pos[0], agent.mem)[0]
    np.testing.assert_allclose(x_gate0, x_ref, rtol=0, atol=0)

    # The same slot with an open gate changes the output: the test above could fail.
    tr1 = dict(tr, gates=tr["gates"].at[2].set(1.0))
    theta1 = jax.flatten_util.ravel_pytree(tr1)[0]
    x_gate1 = forward_step(sim, gated, theta1, obs[0], act[0], 0, pos[0], agent.mem)[0]
    assert float(jnp.abs(x_gate1 - x_ref).max()) > 1e-3

    # An inactive slot is an exact identity whatever its weights and gates.
    x_inactive = forward_step(sim, agent, theta1, obs[0], act[0], 0, pos[0], agent.mem)[0]
    np.testing.assert_array_equal(np.asarray(x_inactive), np.asarray(x_ref))


def test_bfloat16_weights_are_held_half_size_and_act_alike(sim, state):
    """agents.weights_dtype=bfloat16: a newborn holds its inherited matrices in bfloat16 (vectors and the
    drive gene in float32), a grown layer too, and its forward pass stays close to float32's, not equal."""
    from evodevo import config
    from evodevo.agents.learner import Learner
    from evodevo.treeutil import row

    ag = Learner(tiny("agents.weights_dtype=bfloat16").agents, sim.world)
    agent = one_agent(state)
    genome = row(state.genomes, 0)
    born = ag.newborn(sim.strategy.gather(state.pool, genome), genome.active, genome.gates, jax.random.PRNGKey(0))
    grown = ag.insert_layer(born, 2, sim.strategy.gather(state.pool, genome)["layer"][0], jax.random.PRNGKey(1))
    for a in (born, grown):
        dtypes = {(x.ndim, x.dtype) for k, t in a.base.items() if k != "drive" for x in jax.tree.leaves(t)}
        assert dtypes == {(1, jnp.dtype(jnp.float32)), (2, jnp.dtype(jnp.bfloat16))}, dtypes
        assert {x.dtype for x in jax.tree.leaves(a.base["drive"])} == {jnp.dtype(jnp.float32)}
    half = agent.replace(base=tf.hold(agent.base, "bfloat16"))
    obs, act, pos = random_inputs(sim, jax.random.PRNGKey(1), 1)
    x32 = forward_step(sim, agent, agent.theta, obs[0], act[0], 0, pos[0], agent.mem)[0]
    x16 = forward_step(sim, half, agent.theta, obs[0], act[0], 0, pos[0], agent.mem, ag=ag)[0]
    assert x16.dtype == jnp.float32
    err = float(jnp.abs(x16 - x32).max() / jnp.abs(x32).max())
    assert 0 < err < 0.05, err
    with pytest.raises(config.ConfigError, match="agents.weights_dtype"):
        tiny("agents.weights_dtype=bfloat16", "agents.learn=full")


def test_alpha_receives_gradient_at_zero(sim, state):
    ag = sim.kind
    agent = one_agent(state)
    obs, act, pos = random_inputs(sim, jax.random.PRNGKey(2), 1)
    tr = ag.unravel(agent.theta)
    theta0 = jax.flatten_util.ravel_pytree(dict(tr, gates=jnp.zeros_like(tr["gates"])))[0]

    def value(theta):
        x, *_, (enc, head, _) = forward_step(sim, agent, theta, obs[0], act[0], 0, pos[0], agent.mem)
        return tf.policy_value(head, tf.read_out(head, x[ag.dm.action_index]))[1]

    g = ag.unravel(jax.jit(jax.grad(value))(theta0))["gates"]
    active = np.asarray(agent.active)
    assert np.all(np.abs(np.asarray(g)[active]) > 0), g
    assert np.all(np.asarray(g)[~active] == 0)


# --------------------------------------------------------------------------- KV cache


def test_kv_cache_stepping_equals_full_recomputation(sim, state):
    ag, dm = sim.kind, sim.kind.dm
    agent = one_agent(state)
    steps = dm.t + 3  # longer than the window: old steps must fall out of both
    obs, act, pos = random_inputs(sim, jax.random.PRNGKey(3), steps)

    xs, mems = [], []
    a = agent
    for t in range(steps):
        mems.append(a.mem)
        x, k_new, v_new, *_ = forward_step(sim, a, a.theta, obs[t], act[t], t, pos[t], a.mem)
        a = ag.write_cache(a, k_new, v_new, t).replace(mem=x[1 + dm.k:])
        xs.append(x)
    stepped = jnp.stack(xs)

    # One call over all steps' tokens with an empty cache and a block-causal window (compiled: op by op it
    # compiles every operation again).
    @jax.jit
    def recompute(agent, mems):
        enc, layers, head, gates = ag.weights(agent.theta, agent.base)
        tokens = jnp.concatenate([
            tf.step_tokens(enc, tf.encode_obs(enc, obs[t], dm), act[t], t, pos[t], BODY, mems[t], dm)
            for t in range(steps)
        ])
        q_step = jnp.repeat(jnp.arange(steps, dtype=jnp.int32), dm.s)
        empty = (jnp.zeros((dm.l_max, 0, dm.d)), jnp.zeros((dm.l_max, 0, dm.d)), jnp.zeros((0,), jnp.int32))
        return tf.run_layers(tokens, layers, gates, agent.active, *empty, q_step, dm)[0]

    full = recompute(agent, mems)
    np.testing.assert_allclose(np.asarray(stepped).reshape(full.shape), np.asarray(full), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- normalisers


def test_developmental_gates_take_larger_steps(sim):
    """The optimiser multiplies the update at the gates' coordinates by their factors, and the
    learner's factors are dev_gate_lr for the layers grown in during life, 1 for inherited ones."""
    from evodevo.agents.optim import optimizer

    tx = optimizer(grad_clip=1.0, lr=1e-3, max_update=1.0)
    theta = jnp.zeros(6)
    step, _ = tx.update(jnp.full(6, 0.1), tx.init(theta), theta, coordinates=jnp.array([1, 4]),
                        factors=jnp.array([10.0, 1.0]))
    assert float(step[0]) < 0 and float(step[4]) == float(step[0])
    np.testing.assert_allclose(step[1], 10 * step[0], rtol=1e-6)
    factors = sim.kind.gate_lr(sim.hp.agents, jnp.arange(sim.kind.dm.l_max) == 1)
    expected = np.ones((sim.kind.dm.l_max, 2))
    expected[1] = sim.cfg.agents.dev_gate_lr
    np.testing.assert_array_equal(np.asarray(factors), expected)


def test_welford_and_normalize_hand_computed():
    s = Welford.zeros((2,))
    assert float(s.var[0]) == 1.0  # unscaled until two samples
    for x in ([1.0, 10.0], [3.0, 10.0], [5.0, 10.0]):
        s = s.update(jnp.array(x))
    # samples 1, 3, 5: mean 3, sample variance ((-2)^2 + 0 + 2^2) / 2 = 4
    np.testing.assert_allclose(s.mean, [3.0, 10.0])
    np.testing.assert_allclose(s.var, [4.0, 0.0])
    np.testing.assert_allclose(normalize(s, jnp.array([7.0, 10.0]), clip=5.0), [2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(normalize(s, jnp.array([100.0, 11.0]), clip=5.0), [5.0, 5.0])
    # agents.obs_norm: the encoder reads the normalised observation, or (off) the observation itself; the
    # statistics are kept either way (7 joins them: mean 4, sample variance 20 / 3)
    for on, seen in ((True, [3.0 / np.sqrt(20.0 / 3.0), 0.0]), (False, [7.0, 10.0])):
        stats, obs_n = observe(s, jnp.array([7.0, 10.0]), 5.0, on)
        np.testing.assert_allclose(stats.mean, [4.0, 10.0])
        np.testing.assert_allclose(obs_n, seen, rtol=1e-6, atol=1e-6)


def test_reward_scale_hand_computed():
    rs = RewardScale.zeros()
    rs = rs.update(1.0, 0.0, 0.5)  # u = 1
    rs = rs.update(1.0, 0.0, 0.5)  # u = 0.5 * 1 + 1 = 1.5
    rs = rs.update(2.0, 1.0, 0.5)  # terminal: u = 2
    # returns 1, 1.5, 2: mean 1.5, sample variance (0.25 + 0 + 0.25) / 2 = 0.25 -> std 0.5
    np.testing.assert_allclose(float(rs.ret), 2.0)
    np.testing.assert_allclose(float(rs.stats.var), 0.25)
    np.testing.assert_allclose(float(rs.scale(1.0)), 2.0, rtol=1e-6)


def test_centered_reward_hand_computed():
    """agents.center_reward: each reward less the mean of the life's rewards so far, before the return's scale."""
    rs = RewardScale.zeros()
    rs = rs.update(-1.0, 0.0, 0.5, center=True)  # mean -1: centered 0, u = 0
    rs = rs.update(-3.0, 0.0, 0.5, center=True)  # mean -2: centered -1, u = -1
    rs = rs.update(-2.0, 1.0, 0.5, center=True)  # terminal, mean -2: centered 0, u = 0
    # returns 0, -1, 0: mean -1/3, sample variance (1/9 + 4/9 + 1/9) / 2 = 1/3
    np.testing.assert_allclose(float(rs.rate.mean), -2.0)
    np.testing.assert_allclose(float(rs.stats.var), 1.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(float(rs.scale(-3.0, center=True)), -np.sqrt(3.0), rtol=1e-6)
    np.testing.assert_allclose(float(rs.scale(-3.0)), -3.0 * np.sqrt(3.0), rtol=1e-6)  # off: the raw reward
    # A constant reward, however far below zero, centers to nothing: living no longer costs what dying saves.
    flat = RewardScale.zeros()
    for _ in range(4):
        flat = flat.update(-5.0, 0.0, 0.99, center=True)
    assert float(flat.scale(-5.0, center=True)) == 0.0 and float(flat.ret) == 0.0


def test_drive_reduction_hand_computed():
    """r_drive = D(h_t) - D(h_t+1), D = sum_i w_i (1 - h_i)^2 over health, food, drink, energy."""
    from evodevo.agents.drives import drive, drive_reduction

    w = jnp.array([2.0, 1.0, 0.5, 0.0])  # health, food, drink, energy
    body = jnp.array([7 / 9, 4 / 9, 1.0, 0.0, 0.0])  # health 7, food 4, drink 9, energy 0, awake
    ate = body.at[1].set(6 / 9)
    d = 2.0 * (2 / 9) ** 2 + 1.0 * (5 / 9) ** 2  # drink is full; energy has no weight
    np.testing.assert_allclose(float(drive(w, body)), d, rtol=1e-6)
    np.testing.assert_allclose(float(drive_reduction(w, body, ate)), (5 / 9) ** 2 - (3 / 9) ** 2, rtol=1e-5)
    hit = body.at[0].set(5 / 9)  # a zombie's blow: the drive rises, the reward is negative
    np.testing.assert_allclose(float(drive_reduction(w, body, hit)), 2.0 * ((2 / 9) ** 2 - (4 / 9) ** 2), rtol=1e-5)


def test_forage_fear_and_play_set_curiosity_by_need_threat_and_age():
    """r = (w_curiosity + w_forage (1 - min(food, drink)) + w_fear threat + w_play young) curiosity + drive
    reduction + w_death died: a sated agent with w_curiosity < 0 is averse to surprise, a thirsty one seeks
    it, with a hostile mob in view fear adds its weight, and while young play adds its own."""
    from evodevo.agents.drives import reward

    # curiosity, health, food, drink, energy, death, forage, fear, play, danger
    w = jnp.array([[-0.1, 0.0, 0.0, 1.0, 0.0, -1.0, 0.3, -0.5, 0.4, 0.0]] * 2)
    sated = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
    thirsty = jnp.array([1.0, 7 / 9, 1 / 9, 1.0, 0.0])  # drink 1 is the most depleted need: 8/9
    body = jnp.stack([sated, thirsty])
    drank = body.at[1, 2].set(3 / 9)
    r, r_drive = reward(w, jnp.array([2.0, 2.0]), body, drank, jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(np.asarray(r_drive), [0.0, (8 / 9) ** 2 - (6 / 9) ** 2 - 1.0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(r), [-0.2, (-0.1 + 0.3 * 8 / 9) * 2.0 + float(r_drive[1])], rtol=1e-5)
    feared, _ = reward(w, jnp.array([2.0, 2.0]), body, drank, jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(np.asarray(feared), [(-0.1 - 0.5) * 2.0, float(r[1])], rtol=1e-5)
    played, _ = reward(w, jnp.array([2.0, 2.0]), body, drank, jnp.array([0.0, 1.0]), None, jnp.array([True, False]))
    np.testing.assert_allclose(np.asarray(played), [(-0.1 + 0.4) * 2.0, float(r[1])], rtol=1e-5)


def test_danger_drive_pays_each_strike_at_once():
    """r_drive += w_danger (danger_t - danger_t+1), danger the health left in the hostile mobs beside (in
    zombies): a strike that takes a zombie from 5 to 4 pays w/5 within the step, a zombie stepping beside
    costs what it brings, and an agent whose danger weight is zero is paid nothing."""
    from evodevo.agents.drives import reward
    from evodevo.agents.kind import DRIVES

    w = jnp.zeros((3, len(DRIVES))).at[:2, DRIVES.index("danger")].set(2.5)
    body = jnp.ones((3, 5)).at[:, 4].set(0.0)
    before, after = jnp.array([1.0, 0.0, 1.0]), jnp.array([0.8, 1.0, 0.8])  # struck; a zombie came; struck
    r, r_drive = reward(w, jnp.zeros(3), body, body, jnp.zeros(3), danger=(before, after))
    np.testing.assert_allclose(np.asarray(r_drive), [0.5, -2.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(r), np.asarray(r_drive))
    assert np.asarray(reward(w, jnp.zeros(3), body, body, jnp.zeros(3))[1]).tolist() == [0.0] * 3  # none sensed


# one founders' compile for the drive-gene tests (drives, instinct, reflex)
EVOLVED = ("agents.drives=evolved", "agents.instinct=true", "agents.reflex=2", "agents.innate_prior=true")


def test_evolved_drives_come_from_the_inherited_drive_gene(sim, state):
    """drives=evolved: an agent's reward weights are its drive gene's; drives=config: the config's; offset: both."""
    from evodevo.agents import drives
    from evodevo.agents.kind import DRIVES

    evolved = shared_simulation(tiny(*EVOLVED))  # compiles only its founders (shared with the instinct test)
    agents, pool, genomes = evolved.founders(evolved.hp, jax.random.PRNGKey(0))
    w = np.asarray(evolved.kind.drive_weights(evolved.hp.agents, agents))
    genes = jax.vmap(evolved.kind.unravel_gene["drive"])(pool.bank("drive").params[genomes.slot("drive")])
    np.testing.assert_array_equal(w, np.asarray(genes["w"]))
    assert w.shape == (sim.n, len(DRIVES)) and 0 < np.abs(w).max() < 1.0  # small and random, not hand-set
    fixed = np.asarray(sim.kind.drive_weights(sim.hp.agents, state.agents))
    # the default: averse to surprise, a blow hurts
    np.testing.assert_allclose(fixed, np.tile([-0.1, 10.0] + [0] * (len(DRIVES) - 2), (sim.n, 1)))
    # drives=offset: the hand-set drives plus the inherited gene's (evolution moves them from the config's values)
    offset = np.asarray(drives.weights("offset", sim.hp.agents, jnp.asarray(w[:sim.n])))
    np.testing.assert_allclose(offset, fixed + w[:sim.n], rtol=1e-6)
    # the in-run control of drive evolution (agents.control=drives): its rows take the hand-set weights, the
    # others keep their gene's; with agents.control=learning (the control learns nothing) the rows are ignored
    rows = jnp.arange(w.shape[0]) % 3 == 0
    np.testing.assert_array_equal(np.asarray(evolved.kind.drive_weights(evolved.hp.agents, agents, rows)), w)
    controlled = copy.copy(evolved.kind)
    controlled.cfg = dataclasses.replace(evolved.kind.cfg, control="drives")
    mixed = np.asarray(controlled.drive_weights(evolved.hp.agents, agents, rows))
    np.testing.assert_allclose(mixed[np.asarray(rows)], np.tile(fixed[0], (int(rows.sum()), 1)))
    np.testing.assert_array_equal(mixed[~np.asarray(rows)], w[~np.asarray(rows)])
    # drives are not learned: a life hands back no change of its drive gene
    change = evolved.kind.learned_change(row_of(agents, 0))
    assert float(jnp.abs(change["drive"]).max()) == 0 and float(jnp.abs(change["layer"]).max()) == 0


def test_instinct_is_inherited_and_leans_the_policy(sim):
    """agents.instinct: the drive gene carries a bias of the policy's logits over the actions (small and
    random in founders); the act samples from the transformer's logits plus it, and a life hands back
    no change of it (it is evolved, never learned)."""
    from evodevo.agents.kind import Senses

    inst = shared_simulation(tiny(*EVOLVED))
    agents, pool, genomes = inst.founders(inst.hp, jax.random.PRNGKey(0))
    b = np.asarray(inst.kind.instinct(agents))
    genes = jax.vmap(inst.kind.unravel_gene["drive"])(pool.bank("drive").params[genomes.slot("drive")])
    np.testing.assert_array_equal(b, np.asarray(genes["instinct"]))
    assert b.shape == (sim.n, sim.world.num_actions) and 0.5 < np.abs(b).max() < 5.0  # random temperaments
    assert inst.kind.instinct(without_innate(agents)) is None  # without: no instinct
    do = inst.world.action_names.index("do")
    leaning = agents.replace(base={**agents.base, "drive": {**agents.base["drive"],
                                                           "instinct": jnp.zeros_like(b).at[:, do].set(50.0)}})
    obs, _, pos = random_inputs(inst, jax.random.PRNGKey(3), inst.n)
    senses = Senses(age=jnp.full(inst.n, 5), pos=pos, prev_action=jnp.zeros(inst.n, jnp.int32),
                    body=jnp.full((inst.n, 5), 0.5), **beside_nothing(inst.n))
    for k in range(3):
        assert (np.asarray(reflex_act(inst)(leaning, obs, senses, jax.random.PRNGKey(k))) == do).all()
    assert float(jnp.abs(inst.kind.learned_change(row_of(agents, 0))["drive"]).max()) == 0
    # agents.instinct_do: founders lean toward DO on average, around their random temperaments
    from evodevo.agents import drives
    founders = jax.vmap(lambda k: drives.init_drive(k, inst.world.num_actions, 3.0, do)["instinct"])(
        jax.random.split(jax.random.PRNGKey(1), 128))
    assert abs(float(founders[:, do].mean()) - 3.0) < 0.3 and float(jnp.abs(founders[:, do - 1].mean())) < 0.3


# the agent as it was before the striking temperament and the reflex became the default
PLAIN = ("agents.instinct=false", "agents.instinct_do=0", "agents.reflex=0", "agents.innate_prior=false")


def without_innate(agents):
    """`agents` as a kind without instinct or reflex holds them: a drive gene of reward weights only."""
    return agents.replace(base={**agents.base, "drive": {"w": agents.base["drive"]["w"]}})


def plain():
    return shared_simulation(tiny(*PLAIN))  # a Simulation compiles nothing until it runs


_REFLEX_ACT = {}


def reflex_act(inst):
    """inst's jitted act -> actions (one compile for the instinct and reflex tests)."""
    if id(inst) not in _REFLEX_ACT:
        _REFLEX_ACT[id(inst)] = jax.jit(lambda a, obs, senses, k: inst.kind.act(inst.hp.agents, a, obs, senses, k)[0])
    return _REFLEX_ACT[id(inst)]


def test_reflex_turns_to_what_lies_beside_and_acts_on_what_it_faces(sim):
    """agents.reflex: the drive gene's reflex [toward, use] x [hostile, passive, water, ripe plant] biases
    the move toward each tile beside the agent that holds a kind (not the faced one: moving there
    would only turn it) and DO by what the faced tile holds; founders' reflexes are random, and a
    life hands back no change of them."""
    from evodevo.agents import drives
    from evodevo.agents.kind import Senses

    # by hand: a zombie LEFT, water RIGHT (faced) and UP; moves are actions 1-4, DO 5
    near = jnp.zeros((4, 4)).at[0, 0].set(1).at[1, 2].set(1).at[2, 2].set(1)
    reflex = jnp.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    bias = np.asarray(drives.reflex_bias(reflex, near, 1, (1, 2, 3, 4), 5, 17))
    np.testing.assert_allclose(bias[:6], [0, 1.0, 0, 3.0, 0, 30.0])
    assert not bias[6:].any()
    # agents.seek: a third row, a taxis: the nearest cow in view lies UP and RIGHT, water DOWN
    seen = jnp.zeros((4, 4)).at[2, 1].set(1).at[1, 1].set(1).at[3, 2].set(1)
    seek = jnp.concatenate([reflex, jnp.array([[0.0, 5.0, -7.0, 0.0]])])
    bias = np.asarray(drives.reflex_bias(seek, near, 1, (1, 2, 3, 4), 5, 17, seen))
    np.testing.assert_allclose(bias[:6], [0, 1.0, 5.0, 3.0 + 5.0, -7.0, 30.0])
    # agents.reflex_need: every pull toward a kind scaled by the need of what it gives (sated: no water)
    need = jnp.array([1.0, 0.5, 0.0, 0.5])
    bias = np.asarray(drives.reflex_bias(seek, near, 1, (1, 2, 3, 4), 5, 17, seen, need))
    np.testing.assert_allclose(bias[:6], [0, 1.0, 2.5, 2.5, 0.0, 0.0])
    assert drives.init_drive(jax.random.PRNGKey(0), 17, 0.0, 5, 2.0, 4, seek=True)["reflex"].shape == (3, 4)
    inst = shared_simulation(tiny(*EVOLVED))
    agents, pool, genomes = inst.founders(inst.hp, jax.random.PRNGKey(0))
    b = np.asarray(inst.kind.reflex(agents))
    genes = jax.vmap(inst.kind.unravel_gene["drive"])(pool.bank("drive").params[genomes.slot("drive")])
    np.testing.assert_array_equal(b, np.asarray(genes["reflex"]))
    assert b.shape == (inst.n, 2, 4) and 1.0 < np.abs(b).max() < 10.0  # founders ~N(0, 2^2): random temperaments
    assert inst.kind.reflex(without_innate(agents)) is None  # without: no reflex
    assert float(jnp.abs(inst.kind.learned_change(row_of(agents, 0))["drive"]).max()) == 0
    # a strong fight reflex: strike the zombie in front, turn to one beside
    fighter = agents.replace(base={**agents.base, "drive": {**agents.base["drive"], "reflex": jnp.zeros_like(b).at[
        :, :, 0].set(50.0)}})
    obs, _, pos = random_inputs(inst, jax.random.PRNGKey(3), inst.n)
    zombie_up = jnp.zeros((inst.n, 4, 4)).at[:, 2, 0].set(1)
    senses = Senses(age=jnp.full(inst.n, 5), pos=pos, prev_action=jnp.zeros(inst.n, jnp.int32),
                    body=jnp.full((inst.n, 5), 0.5), near=zombie_up, facing=jnp.array([2, 0, 1, 3]))
    act = np.asarray(reflex_act(inst)(fighter, obs, senses, jax.random.PRNGKey(0)))
    assert act[0] == inst.world.action_names.index("do") and (act[1:] == inst.world.action_names.index("up")).all()


def test_innate_prior_regularises_toward_the_innate_policy(sim):
    """agents.innate_prior: the entropy bonus becomes -KL(pi || softmax(innate)), so a policy that is
    the innate one alone feels no pull from it (the entropy bonus would pull it toward uniform)."""
    inst = shared_simulation(tiny(*EVOLVED))
    innate = jnp.array([0.0, 3.0, -1.0, 0.5])
    out = {"logits": innate, "innate": innate, "value": jnp.zeros(()), "pred": jnp.zeros(3), "reward": jnp.zeros(()),
           "pos": jnp.zeros(2)}

    def pull(kind):
        loss = lambda o: kind._head_loss(inst.hp.agents, o, jnp.zeros(3), 0, 0.0, 0.0, 0.0, jnp.zeros(2))[0]  # noqa: E731
        return np.asarray(jax.grad(loss)(out)["logits"])

    np.testing.assert_allclose(pull(inst.kind), 0.0, atol=1e-7)
    assert np.abs(pull(plain().kind)).max() > 1e-3  # without: the entropy bonus pulls toward uniform


def row_of(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def test_interoception_reaches_the_agent(sim, state):
    """The body is an input of its own: another body changes the agent's output."""
    agent = one_agent(state)
    obs, act, pos = random_inputs(sim, jax.random.PRNGKey(7), 1)
    x = forward_step(sim, agent, agent.theta, obs[0], act[0], 0, pos[0], agent.mem)[0]
    hurt = tf.interoception(jnp.array([0.3, 0.8, 0.6, 1.0, 0.0]), jnp.array([1.0, 0.8, 0.6, 1.0, 0.0]))
    y = forward_step(sim, agent, agent.theta, obs[0], act[0], 0, pos[0], agent.mem, hurt)[0]
    assert float(jnp.abs(x - y).max()) > 1e-3


def test_senses_are_bounded_and_distinct():
    t = tf.time_code(jnp.array([0, 1, 1000]), 6)
    p = tf.place_code(jnp.array([[0, 0], [5, 7], [60, 3]]), 4)
    assert t.shape == (3, 12) and p.shape == (3, 24)
    assert float(jnp.abs(t).max()) <= 1.0 and float(jnp.abs(p).max()) <= 1.0
    assert float(jnp.abs(t[1] - t[2]).max()) > 0.1 and float(jnp.abs(p[1] - p[2]).max()) > 0.1


# --------------------------------------------------------------------------- learning loop


def test_broken_agent_dies_alone_and_never_touches_the_pool(sim, state):
    """NaN weights in slot 1: it dies as `broken` on the first step; the others learn exactly as without it.
    (Two steps: the chunk length `test_changed_float_hyperparameter_does_not_recompile` compiles.)"""
    poisoned = state.replace(agents=state.agents.replace(theta=state.agents.theta.at[1].set(jnp.nan)))
    s_bad, out_bad = sim.run_chunk(jax.tree.map(jnp.copy, poisoned), 2)
    s_ok, out_ok = sim.run_chunk(jax.tree.map(jnp.copy, state), 2)
    cause = np.asarray(out_bad["cause"][0])
    from evodevo.world.craftax_world import Cause

    assert cause[1] == Cause.broken and not (np.delete(cause, 1) == Cause.broken).any()
    assert (np.asarray(out_bad["cause"][1]) == np.asarray(out_ok["cause"][1])).all()  # the newborn lives on
    # The pool is untouched by the broken agent; its newborn takes a mutated copy of its drive gene
    # (drives move by birth mutations), so that gene's birth count is all that moves.
    before = dict(jax.tree_util.tree_leaves_with_path(state.pool))
    for path, a in jax.tree_util.tree_leaves_with_path(s_bad.pool):
        if "births" not in jax.tree_util.keystr(path):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(before[path]), err_msg=jax.tree_util.keystr(path))
    births = np.asarray(s_bad.pool.bank("drive").births - state.pool.bank("drive").births)
    assert births.sum() == 1 and births[int(s_bad.genomes.slot("drive")[1])] == 1
    assert all((s_bad.pool.bank(k).births == state.pool.bank(k).births).all() for k in ("encoder", "layer", "head"))
    # Other agents are unaffected, bit for bit.
    for i in (0, 2, 3):
        np.testing.assert_array_equal(np.asarray(s_bad.agents.theta[i]), np.asarray(s_ok.agents.theta[i]))
    # The slot was refilled by a finite newborn.
    assert np.isfinite(np.asarray(s_bad.agents.theta[1])).all()
    assert int(s_bad.slots.agent_id[1]) == int(state.next_agent_id)


def test_one_update_changes_weights_and_stays_finite(sim, state):
    s, out = sim.run_chunk(jax.tree.map(jnp.copy, state))
    assert np.isfinite(np.asarray(s.agents.theta)).all()
    assert not np.array_equal(np.asarray(s.agents.theta), np.asarray(state.agents.theta))
    for name in ("intrinsic_reward", "loss_forward", "loss_inverse", "td_error", "loss_position"):
        assert name in out["metrics"]
    assert (np.asarray(out["action"][0]) == 0).all()  # founders rest (NOOP) on their first step
    assert np.isnan(np.asarray(out["metrics"]["td_error"][0])).all()  # ... and have nothing to learn yet
    # What act did to an agent reaches the next step: one observation counted per step of life (a
    # newborn rests on its first step, then acts from age 1), and the KV cache holds the last step
    # (an earlier version dropped both).
    age = np.asarray(s.step - s.slots.birth_step)
    np.testing.assert_array_equal(np.asarray(s.agents.obs_stats.count), age)
    np.testing.assert_array_equal(np.asarray(s.agents.cache_step).max(axis=1), age)
    assert float(jnp.abs(s.agents.mem).max()) > 0


def test_changed_float_hyperparameter_does_not_recompile(sim, state):
    """Float hyperparameters are traced: a new learning rate (or ES step) runs on the compiled chunk."""
    from evodevo import config

    s1, _ = sim.run_chunk(jax.tree.map(jnp.copy, state), 2)
    compiled = sim._chunk._cache_size()
    other = tiny("agents.lr=0.02", "genepool.es_lr=0.3", "genepool.crossover=0.9")
    assert shared_simulation(other) is sim  # one compile key: the tests share the chunk too
    s2, _ = sim.run_chunk(jax.tree.map(jnp.copy, state), 2, hp=config.hyperparams(other))
    assert sim._chunk._cache_size() == compiled
    # the new rate took effect: the test could fail
    assert not np.allclose(np.asarray(s1.agents.theta), np.asarray(s2.agents.theta))
    # a float that fixes a shape is static: it is part of the compile key
    assert config.compile_key(tiny("genepool.init_fill=1.0")) != config.compile_key(tiny())


def test_control_share_picks_lives_that_learn_nothing_beside_learners(sim, state):
    """agents.control_share (traced: the compiled chunk runs it): the lives the agent-id hash picks keep their
    founders' weights bit for bit while the others learn, in one run; the hash is the same in numpy and jax."""
    from evodevo import config
    from evodevo.agents.kind import in_control

    ids = np.arange(1000)
    np.testing.assert_array_equal(in_control(ids, 0.3), np.asarray(in_control(jnp.asarray(ids), 0.3)))
    assert 0.27 < in_control(ids, 0.3).mean() < 0.33 and not in_control(ids, 0.0).any()
    s, _ = sim.run_chunk(jax.tree.map(jnp.copy, state), 2, hp=config.hyperparams(tiny("agents.control_share=0.5")))
    founders = np.asarray(state.slots.agent_id)
    assert (np.asarray(s.slots.agent_id) == founders).all()  # no death or birth in two steps
    control = in_control(founders, 0.5)
    assert control.any() and not control.all()
    moved = [not np.array_equal(np.asarray(s.agents.theta[i]), np.asarray(state.agents.theta[i]))
             for i in range(len(founders))]
    assert moved == list(~control)


def test_carried_vjp_is_the_act_steps_own(sim, state):
    """Learning lags acting by one step: the gradient of transition t comes from the act on s_t,
    carried in the state as arrays (the inherited weights excepted: the agents hold those) and
    rebuilt with the structure of the act on s_{t+1}. It equals that act's own VJP, bit for bit."""
    ag, hp, world = sim.kind, sim.hp, state.world
    senses = sim.senses(state, world, state.step + 1, jnp.full(sim.n, -1, jnp.int32))

    @jax.jit
    def two_acts(agents, key):
        _, agents1, pending0 = ag.act(hp.agents, agents, world.obs, senses, key)
        carried = ag.carry(pending0)
        _, agents2, pending1 = ag.act(hp.agents, agents1, world.obs * 0.5, senses, jax.random.fold_in(key, 1))
        cot = jax.tree.map(lambda x: jax.random.normal(jax.random.fold_in(key, 2), x.shape), pending0["out"])
        carried_bytes = sum(x.size * x.dtype.itemsize for x in carried["residuals"])
        return ag._pullback(carried, pending1, agents2)(cot), pending0["vjp"](cot), carried_bytes

    (g_carried,), (g_direct,), carried_bytes = two_acts(state.agents, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(np.asarray(g_carried), np.asarray(g_direct))
    assert float(jnp.abs(g_direct).max()) > 0
    base_bytes = sum(x.nbytes for x in jax.tree.leaves(state.agents.base))
    assert int(carried_bytes) < base_bytes  # the inherited weights are not copied into the carry


def test_dense_policy_delta_learns_the_whole_policy_matrix(sim):
    """dense_policy: the policy weight's delta is a full d x A matrix, not a rank-r product."""
    from evodevo.agents.learner import Learner

    dense = Learner(tiny("agents.dense_policy=true").agents, sim.world)  # no compile
    d, a, r = sim.kind.dm.d, sim.world.num_actions, sim.cfg.agents.rank
    assert dense.n_params - sim.kind.n_params == d * a - r * (d + a)
    tr = dense.unravel(jnp.zeros(dense.n_params))
    assert tr["delta"]["head"]["w_pi"].shape == (d, a)


def test_eligibility_trace_hand_computed():
    from evodevo.agents.optim import decay_trace

    e = jnp.zeros(2)
    for g in ([1.0, 0.0], [0.0, 2.0], [1.0, 1.0]):  # gamma 0.5, lambda 0.8: decay 0.4 per step
        e = decay_trace(e, jnp.array(g), 0.5, 0.8)
    np.testing.assert_allclose(np.asarray(e), [0.16 + 1.0, 0.8 + 1.0], rtol=1e-6)


@pytest.fixture(scope="module")
def bare(background):
    """The BARE learner alone (K = 0, M = 0, learn=full) with agents.lam 0 and 0.8: two updates each, run by
    tests/jobs/bare_agents.py beside the suite (each static lambda path is a compile of its own):
    (its JSON report per lambda, its arrays "<lam>/theta0..2", "<lam>/loss_forward")."""
    completed, out = background("bare_agents")
    return job_report(completed), dict(np.load(f"{out}.npz"))


@pytest.mark.background("bare_agents")
def test_td_lambda_first_step_is_td0_and_later_steps_are_not(bare):
    """From an empty trace the TD(lambda) update is the TD(0) actor-critic update (the trace holds
    one step's gradient); from the second update on the trace carries earlier steps."""
    _, x = bare
    np.testing.assert_allclose(x["0.8/theta1"], x["0.0/theta1"], rtol=1e-4, atol=1e-6)
    assert not np.allclose(x["0.8/theta2"], x["0.0/theta2"], rtol=1e-4, atol=1e-6)


@pytest.mark.background("bare_agents")
def test_zero_thinking_and_memory_tokens_and_full_weight_learning_run(bare):
    """K = 0, M = 0 and learn=full in one compile: the action is read at the observation token."""
    report, x = bare
    for lam in ("0.0", "0.8"):
        r = report[lam]
        assert r["s"] == 1 and r["action_index"] == 0
        assert r["n_params"] > 10_000  # all weights, not a low-rank delta
        assert not r["broken"] and not r["moved_on_first_step"]  # nothing to learn before the first transition
        assert np.isfinite(x[f"{lam}/theta2"]).all() and not np.array_equal(x[f"{lam}/theta2"], x[f"{lam}/theta0"])
        assert np.isfinite(x[f"{lam}/loss_forward"]).all()


@pytest.mark.background("bare_agents")
def test_obgd_steps_the_actor_critic_apart_by_its_own_bound(bare):
    """agents.obgd_step > 0 (with a trace): the actor-critic's TD(lambda) step leaves Adam for ObGD's, whose
    norm is at most 1 / kappa; at 0 there is no such step and the update is Adam's alone."""
    report, x = bare
    kappa = tiny().agents.obgd_kappa
    r = report["0.8/obgd"]
    assert not r["broken"] and not r["moved_on_first_step"]
    assert not np.allclose(x["0.8/obgd/theta1"], x["0.8/theta1"], rtol=1e-4, atol=1e-6)
    assert np.isfinite(x["0.8/obgd/theta2"]).all()
    assert (x["0.8/obgd_norm"] == 0).all()
    assert (x["0.8/obgd/obgd_norm"] > 0).all() and (x["0.8/obgd/obgd_norm"] <= 1 / kappa + 1e-6).all()


@pytest.mark.parametrize("kappa", [2.0, 0.5])
def test_obgd_step_is_plain_below_its_bound_and_bounded_above_it(kappa):
    from evodevo.agents.optim import obgd

    e = jnp.array([[0.01, -0.02, 0.03], [1.0, -2.0, 3.0]])
    delta = jnp.array([0.5, -4.0])
    step = np.asarray(obgd(1.0, delta, e, kappa))
    np.testing.assert_allclose(step[0], 0.5 * np.asarray(e[0]), rtol=1e-6)  # 1 * kappa * 1 * 0.06 < 1: the plain step
    # above it the step shrinks until step_size * kappa * max(|delta|, 1) * ||e||_1 = 1: |step|_1 = 1 / kappa
    np.testing.assert_allclose(np.abs(step[1]).sum(), 1 / kappa, rtol=1e-6)
    assert np.sign(step[1]).tolist() == [-1.0, 1.0, -1.0]  # along delta * e
    assert not np.asarray(obgd(0.0, delta, e, kappa)).any()


def test_fast_readout_step_hand_computed():
    """agents.fast_readout: one TD(0) actor-critic step on the readout, normalised by |h|^2 + 1; a slot
    without a finite TD error (no transition) keeps its readout."""
    from evodevo.agents.fast import Readout, learn_readouts

    h = jnp.array([1.0, 0.0])  # |h|^2 + 1 = 2: k = 0.5 * 2 / 2 = 0.5
    r = Readout.zeros(3, 2).learn(0.5, h, jnp.zeros(3), 1, 2.0)
    np.testing.assert_allclose(r.w_v, [0.5, 0.0])
    np.testing.assert_allclose(r.w_pi, [[-1 / 6, 0.0], [1 / 3, 0.0], [-1 / 6, 0.0]], rtol=1e-6)
    logits, value = r.read(jnp.array([2.0, 5.0]))
    np.testing.assert_allclose(logits, [-1 / 3, 2 / 3, -1 / 3], rtol=1e-6)
    assert float(value) == 1.0
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), r)
    carried = {"out": {"fast_h": jnp.stack([h, h]), "logits": jnp.zeros((2, 3))}, "action": jnp.array([0, 0])}
    kept = learn_readouts(batch, 0.5, carried, jnp.array([1.0, jnp.nan]))
    np.testing.assert_array_equal(kept.w_pi[1], r.w_pi)
    assert float(kept.w_v[0, 0]) == 0.75  # 0.5 + 0.5 * 1 / 2


def test_fast_readout_trace_credits_the_last_acts_and_moves_the_value_as_td0():
    """agents.fast_lam: the step follows a trace of normalised gradients, so the second transition's TD error
    also credits the first state and act (at decay 0 it does not), and the step is normalised where it would
    move V(s_t) further than TD(0)'s step (step * delta)."""
    from evodevo.agents.fast import Readout

    x1, x2 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    first = Readout.zeros(3, 2).learn(0.5, x1, jnp.zeros(3), 1, 2.0, decay=0.5)  # as TD(0): k = 1
    np.testing.assert_allclose(first.w_v, [0.5, 0.0])
    traced = first.learn(0.5, x2, jnp.zeros(3), 0, 1.0, decay=0.5)  # e_v = [0.25, 0.5]: moves V(x2) 0.5, k = 0.5
    np.testing.assert_allclose(traced.w_v, [0.625, 0.25])
    np.testing.assert_allclose(traced.w_pi, [[-5 / 24, 1 / 6], [5 / 12, -1 / 12], [-5 / 24, -1 / 12]], rtol=1e-6)
    np.testing.assert_allclose(first.learn(0.5, x2, jnp.zeros(3), 0, 1.0, decay=0.0).w_v, [0.5, 0.25])
    r = Readout.zeros(3, 2)
    for delta in (1.0, 1.0, 3.0):  # the same state thrice: the trace's e_v . x grows 0.5, 0.95, 1.355
        before = float(r.read(x1)[1])
        r = r.learn(0.5, x1, jnp.zeros(3), 0, delta, decay=0.9)
    np.testing.assert_allclose(float(r.read(x1)[1]) - before, 0.5 * 3.0, rtol=1e-6)  # TD(0)'s step, not 1.355 x it
    np.testing.assert_allclose(r.trace["w_v"], [1.355, 0.0], rtol=1e-6)


def test_centred_fast_readout_hand_computed():
    """agents.fast_center: the features are the token less the mean of the life's transitions' tokens (zero
    before the first), and the normalisation's +1 is a bias feature that learns what to do everywhere."""
    from evodevo.agents.fast import Readout

    r = Readout.zeros(3, 2, center=True)
    h0 = jnp.array([3.0, 1.0])
    x0 = r.features(h0)
    assert not np.asarray(x0).any()  # no transition yet: nothing to centre on
    r = r.learn(0.5, x0, jnp.zeros(3), 2, 2.0, h0)  # |x|^2 + 1 = 1: k = 0.5 * 2 = 1, all of it on the biases
    np.testing.assert_allclose(r.b_pi, [-1 / 3, -1 / 3, 2 / 3], rtol=1e-6)
    assert float(r.b_v) == 1.0 and not np.asarray(r.w_pi).any()
    np.testing.assert_allclose(r.mean.mean, h0)
    x1 = r.features(jnp.array([4.0, 1.0]))
    np.testing.assert_allclose(x1, [1.0, 0.0])  # the token less its life's mean
    logits, value = r.read(x1)
    np.testing.assert_allclose(logits, r.b_pi, rtol=1e-6)
    r = r.learn(0.5, x1, jnp.zeros(3), 0, 2.0, jnp.array([4.0, 1.0]))  # k = 0.5 * 2 / (1 + 1) = 0.5
    np.testing.assert_allclose(r.w_v, [0.5, 0.0])
    np.testing.assert_allclose(r.b_v, 1.5)
    np.testing.assert_allclose(r.mean.mean, [3.5, 1.0])


@pytest.mark.parametrize("center", [False, True])
def test_a_newborn_inherits_a_share_of_its_parents_readout(center):
    """agents.fast_inherit: newborn s takes `share[s]` of the readout of row src[s] (weights and, centred, biases);
    a row with share 0 keeps its own; traces and the running mean start afresh."""
    from evodevo.agents.fast import Readout, inherit

    def readouts(scale):
        r = jax.tree.map(lambda x: jnp.stack([x, x, x]), Readout.zeros(2, 2, center))
        return jax.tree.map(lambda x: scale * (1.0 + jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)), r)

    parents, born = readouts(1.0), readouts(-1.0)
    out = inherit(born, parents, jnp.array([2, 0, 1]), jnp.array([1.0, 0.0, 0.5]))
    for name in ("w_pi", "w_v") + (("b_pi", "b_v") if center else ()):
        got, theirs, mine = (np.asarray(getattr(r, name)) for r in (out, parents, born))
        np.testing.assert_allclose(got, np.stack([theirs[2], mine[1], 0.5 * theirs[1]]), err_msg=name)
    np.testing.assert_array_equal(np.asarray(out.trace["w_v"]), np.asarray(born.trace["w_v"]))
    assert inherit(None, None, jnp.array([0]), jnp.array([1.0])) is None  # no readout: nothing to pass on


def test_teachers_are_first_parents_in_a_slot_within_their_half_of_the_control():
    """A newborn's first parent passes on what it learned when a slot holds it (living, or dying this step;
    not an archived life, not an immigrant's -1) and it lies in the newborn's half of the in-run control."""
    from evodevo.agents.kind import in_control, teachers

    slots = jnp.array([10, 11, 12, 13])  # the slots' lives this step
    first = jnp.array([12, -1, 7, 10])  # parents: in slot 2; none (an immigrant); archived; in slot 0
    src, found = teachers(first, slots, jnp.array([20, 21, 22, 23]), 0.0)
    assert np.asarray(found).tolist() == [True, False, False, True]
    assert int(src[0]) == 2 and int(src[3]) == 0
    src, found = teachers(first, slots[::-1], jnp.array([20, 21, 22, 23]), 0.0)  # slots in any order of ids
    assert np.asarray(found).tolist() == [True, False, False, True]
    assert int(src[0]) == 1 and int(src[3]) == 3
    ids = np.arange(10, 400)
    halves = in_control(ids, 0.5)
    a, b = ids[halves][:2], ids[~halves][:1]  # two controls and a learner
    _, found = teachers(jnp.array([a[0], b[0]]), jnp.array([a[0], b[0]]), jnp.array([a[1], a[1]]), 0.5)
    assert np.asarray(found).tolist() == [True, False]  # a control's child learns from a control, not a learner


def test_a_readout_on_the_senses_moves_only_the_states_that_share_what_lies_beside():
    """agents.fast_input=senses: the readout reads the kinds beside the agent on each side and the kind it faces
    (view: and the way to each kind in view, and danger; facing: the kind it faces alone); one step where a zombie is on its right, faced, moves that
    state (hand-computed) and not one with nothing beside."""
    from evodevo.agents.fast import Readout, reads, width

    def senses(near, facing):
        return reads("senses", None, near, facing)

    near = np.zeros((4, 4), bool)
    near[1, 3] = True  # kind 3 on its right (side 1), which it faces
    x = senses(jnp.asarray(near), jnp.array(1))
    assert np.asarray(x).tolist() == [0.0] * 7 + [1.0] + [0.0] * 11 + [1.0]
    seen = np.zeros((4, 4), np.float32)
    seen[2, 0] = 1.0  # the nearest of kind 0 in view is a move UP away
    view = reads("view", None, jnp.asarray(near), jnp.array(1), jnp.asarray(seen), jnp.array(0.6))
    np.testing.assert_allclose(np.asarray(view), np.asarray(x).tolist() + [0.0] * 8 + [1.0] + [0.0] * 7 + [0.6])
    assert (width("token", 8, 4), width("senses", 8, 4), width("view", 8, 4)) == (8, len(x), len(view))
    # facing: the kind faced alone, so a zombie on its right that it does not face reads nothing
    assert np.asarray(reads("facing", None, jnp.asarray(near), jnp.array(1))).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert not np.asarray(reads("facing", None, jnp.asarray(near), jnp.array(0))).any() and width("facing", 8, 4) == 4
    readout = Readout.zeros(3, 20).learn(1.0, x, jnp.zeros(3), 2, 1.0)  # |x|^2 = 2: steps of 1 / 3
    logits, value = readout.read(x)
    np.testing.assert_allclose(np.asarray(logits), [-2 / 9, -2 / 9, 4 / 9], rtol=1e-6)  # (1{a} - 1/3) * 2/3
    np.testing.assert_allclose(float(value), 2 / 3, rtol=1e-6)
    nothing = readout.read(senses(jnp.zeros((4, 4), bool), jnp.array(0)))
    assert not np.asarray(nothing[0]).any() and float(nothing[1]) == 0.0
    logits, value = Readout.zeros(3, 20).learn(3.0, x, jnp.zeros(3), 2, 1.0).read(x)  # past 1: the policy alone
    np.testing.assert_allclose(np.asarray(logits), [-2 / 3, -2 / 3, 4 / 3], rtol=1e-6)
    np.testing.assert_allclose(float(value), 2 / 3, rtol=1e-6)


@pytest.mark.parametrize("center,network", [(False, True), (True, False)])
def test_fast_readout_learns_in_the_learner(sim, center, network):
    """A newborn's readout is zero (it acts as its genes say); it moves only with a transition, by
    `Readout.learn` on the carried action token, and its value joins the network's. Centred, the first
    transition has nothing to centre on: it moves the biases alone and the mean becomes its token. With
    agents.learn_network=false the network's weights stay as inherited while the readout learns."""
    from evodevo.agents.learner import Learner

    from conftest import founders, learner_steps

    ag = Learner(tiny("agents.fast_readout=1.0", f"agents.fast_center={str(center).lower()}",
                      f"agents.learn_network={str(network).lower()}").agents, sim.world)
    n, hp = sim.n, sim.hp.agents
    step, first_carried = learner_steps(ag, hp, n, sim.world.obs_dim, lambda t: jnp.full((n, 5), 0.5, jnp.float32))
    agents = founders(ag, n, jax.random.PRNGKey(4))
    carried, prev = first_carried(agents), jnp.full(n, -1, jnp.int32)
    agents, carried, prev, *_ = step(agents, carried, prev, 0)
    assert not np.asarray(agents.fast.w_pi).any() and not np.asarray(agents.fast.w_v).any()  # no transition yet
    h0, theta0 = np.asarray(carried["out"]["fast_h"]), np.asarray(agents.theta)
    agents, _, _, broken, metrics, pending = step(agents, carried, prev, 1)
    changed = (np.asarray(agents.theta) != theta0).any(-1)  # per slot
    assert changed.all() if network else not changed.any()
    delta = np.asarray(metrics["td_error"])
    assert np.isfinite(delta).all() and not np.asarray(broken).any()
    if center:
        assert not np.asarray(agents.fast.w_v).any()
        np.testing.assert_allclose(np.asarray(agents.fast.b_v), delta, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(agents.fast.mean.mean), h0, rtol=1e-6)
    else:
        expected = (delta / ((h0 * h0).sum(-1) + 1.0))[:, None] * h0
        np.testing.assert_allclose(np.asarray(agents.fast.w_v), expected, rtol=1e-5, atol=1e-7)
    assert np.isfinite(np.asarray(pending["out"]["logits"])).all()


def test_obgd_step_without_a_trace_is_refused():
    from evodevo import config

    with pytest.raises(config.ConfigError, match="agents.obgd_step") as e:
        tiny("agents.obgd_step=1.0", "agents.lam=0.0")
    assert "\n" not in str(e.value)


def test_lifetimes_record_the_genome(tmp_path, sim):
    from evodevo.world.runner import Runner

    runner = Runner.create(tmp_path / "run", tiny(), sim=sim)
    runner.state = runner.state.replace(slots=runner.state.slots.replace(
        birth_step=jnp.full(sim.n, -sim.cfg.world.max_age + 3, jnp.int32)))  # everybody dies of old age soon
    runner.advance(8)
    runner.close()
    lives = [json.loads(line) for line in (tmp_path / "run" / "lifetimes.jsonl").read_text().splitlines()]
    assert len(lives) >= sim.n and {life["cause"] for life in lives} >= {"old_age"}
    for life in lives:
        g = life["genome"]
        assert len(g["layers"]) == 2 and all(0 <= i for i in g["layers"])
        assert np.shape(g["gates_birth"]) == (2, 2) and np.shape(g["gates_death"]) == (2, 2)
        assert isinstance(g["encoder"], int) and isinstance(g["head"], int)

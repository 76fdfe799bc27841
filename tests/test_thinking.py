"""Thinking tokens with a job (issue #11, item 2): K >= 2 and the debrief (agents.debrief,
`evodevo.agents.debrief`).

One compile serves the debrief: `debrief_run`, steps of act + learn of a tiny learner with
agents.think_tokens=2 and agents.debrief=true on synthetic observations, a body that changes and
the actions the agents chose (a newborn's first act has none: its debrief is zero). The memory
is frozen, so within a step the debrief reaches the heads only by the action token (think_2)
reading think_1: a gradient into the debrief's weights says the thinking token after it reads it.
(K = 0 with M = 0 runs in tests/test_agents.py.)"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evodevo import config, treeutil
from evodevo.agents import debrief
from evodevo.agents import transformer as tf

from conftest import founders, learner_steps, tiny_config as tiny  # noqa: E402

STEPS = 3  # act 0 (a newborn: no outcome yet), then transitions 0 and 1, learned with the debriefs of acts 0 and 1
DRIVES = ("agents.drive_food=1.0", "agents.drive_drink=0.5", "agents.drive_danger=2.5")  # a drive part beside curiosity


def test_debrief_switch_default_bad_value_and_shapes(sim, state):
    """Off by default, and off nothing of it exists (no expectation in the state, no weights in the
    genes, no metric); on without a thinking token to hold it is rejected, naming the key; on, it adds
    exactly the debrief's deltas (rank r on W_e [D, D], dense on W_o [BODY + 2, D]) and no token."""
    from evodevo.agents.learner import Learner

    assert config.Config().agents.debrief is False
    with pytest.raises(config.ConfigError) as e:
        tiny("agents.debrief=true", "agents.think_tokens=0")
    assert "agents.debrief" in str(e.value) and "\n" not in str(e.value)
    ag, dm, r = sim.kind, sim.kind.dm, sim.cfg.agents.rank
    assert state.agents.expected is None and ag.debrief_index is None
    assert not set(debrief.WEIGHTS) & set(ag.genes()["encoder"](jax.random.PRNGKey(0)))
    on = Learner(tiny("agents.debrief=true").agents, sim.world)  # no compile
    assert on.dm == dm and on.dm.s == 1 + dm.k + dm.m
    assert on.n_params - ag.n_params == 2 * dm.d * r + debrief.SCALARS * dm.d == len(on.debrief_index)


@pytest.fixture(scope="module")
def debrief_run(sim):
    """STEPS steps of act + learn; per step the agents before its act, the carried act, the act's
    outcome input and the learn step's metrics."""
    from evodevo.agents.learner import Learner

    # no instinct or reflex: the logits checked by hand are the heads' alone
    cfg = tiny("agents.think_tokens=2", "agents.debrief=true", *DRIVES, "agents.instinct=false", "agents.instinct_do=0",
               "agents.reflex=0")
    ag = Learner(cfg.agents, sim.world)
    hp, n, obs_dim = cfg.agents, sim.n, sim.world.obs_dim

    body = lambda t: (0.9 - 0.1 * t * jnp.arange(1, n + 1, dtype=jnp.float32)[:, None] / n  # noqa: E731
                      * jnp.ones((n, 5))).at[:, -1].set(t % 2)  # asleep every other step
    danger = lambda t: 0.2 * (t % 2 + 1) * jnp.arange(n, dtype=jnp.float32)  # noqa: E731  (struck, or come beside)
    step, first_carried = learner_steps(ag, hp, n, obs_dim, body, danger)
    agents = founders(ag, n, jax.random.PRNGKey(3))
    prev, runs, carried = jnp.full(n, -1, jnp.int32), [], first_carried(agents)
    start = time.perf_counter()
    for t in range(STEPS):
        before = agents
        agents, carried, prev, broken, metrics, pending = step(agents, carried, prev, t)
        outcome = pending["outcome"]
        assert not np.asarray(broken).any()
        runs.append({"before": before, "carried": carried, "outcome": np.asarray(outcome),
                     "metrics": jax.device_get(metrics), "after": agents})
        if t == 0:
            print(f"\ndebrief: one compile + a step, {time.perf_counter() - start:.1f} s")
    assert step._cache_size() == 1  # one compiled shape
    return cfg, ag, runs


def test_gradient_reaches_the_debrief_embedding(debrief_run):
    """Transition 0 was acted on by a newborn (no debrief: zero outcome), so the debrief's weights get
    exactly no gradient; transition 1 (act 1 read act 0's outcome) gives every agent a finite,
    non-zero gradient on them, and they move."""
    _, ag, runs = debrief_run
    np.testing.assert_array_equal(runs[0]["outcome"], 0.0)
    m1, m2 = runs[1]["metrics"], runs[2]["metrics"]
    assert (m1["grad_norm_debrief"] == 0).all() and (m1["grad_norm_heads"] > 0).all()
    g = m2["grad_norm_debrief"]
    assert np.isfinite(g).all() and (g > 0).all()
    idx = ag.debrief_index
    moved = np.abs(np.asarray(runs[2]["after"].theta[:, idx] - runs[1]["after"].theta[:, idx])).max(-1)
    assert (moved > 0).all()


def test_debrief_input_is_the_last_steps_outcome_by_hand(debrief_run):
    """Act t+1's debrief input, by hand from act t (carried: its prediction, latent and body) and
    act t+1's observation: the forward model's error vector, the body's change, curiosity and the
    reward (its danger drive too; less its running mean, with agents.center_reward) scaled by the
    running return scale; its curiosity and unscaled reward are transition t's as learn computes them. The embedding of act
    1's outcome, by hand from the effective weights (inherited + delta), is what the first thinking
    token's input gains; and act 1's logits are those of a forward pass from exactly that input (not
    from a zero debrief)."""
    cfg, ag, runs = debrief_run
    a = cfg.agents
    w_need = np.array([a.drive_health, a.drive_food, a.drive_drink, a.drive_energy])

    def drive(b):
        return ((1.0 - b[:, :4]) ** 2 * w_need).sum(-1)

    for t in range(1, STEPS):
        c, p, before = runs[t - 1]["carried"], runs[t]["carried"], runs[t]["before"]
        err = (np.asarray(p["phi_now"]) - np.asarray(c["phi_now"])) - np.asarray(c["out"]["pred"])
        body, body_next = np.asarray(c["body"]), np.asarray(p["body"])
        curiosity = (err ** 2).mean(-1)
        reward = a.drive_curiosity * curiosity + drive(body) - drive(body_next)
        reward = reward + a.drive_danger * (np.asarray(c["danger"]) - np.asarray(p["danger"]))  # the hostile beside
        assert np.abs(np.asarray(c["danger"]) - np.asarray(p["danger"])).max() > 0
        count, m2 = np.asarray(before.reward_scale.stats.count), np.asarray(before.reward_scale.stats.m2)
        var = np.where(count >= 2, m2 / np.maximum(count - 1, 1), 1.0)
        mean = np.asarray(before.reward_scale.rate.mean) if a.center_reward else 0.0  # centering (default on)
        hand = np.concatenate([err, body_next - body, curiosity[:, None], ((reward - mean) / np.sqrt(var + 1e-8))[:, None]],
                              -1)
        np.testing.assert_allclose(runs[t]["outcome"], hand, rtol=1e-4, atol=1e-6)
        assert np.abs(body_next - body).min() > 0 and (np.abs(err).max(-1) > 0).all()  # the test could fail
        np.testing.assert_allclose(curiosity, runs[t]["metrics"]["curiosity"], rtol=1e-4)
        np.testing.assert_allclose(reward, runs[t]["metrics"]["intrinsic_reward"], rtol=1e-4, atol=1e-7)

    before, c0, c1, o = runs[1]["before"], runs[0]["carried"], runs[1]["carried"], runs[1]["outcome"]
    d = ag.dm.d
    for i in range(ag.n):
        agent = treeutil.row(before, i)
        base, delta = agent.base["encoder"], ag.unravel(agent.theta)["delta"]["encoder"]
        w_e = np.asarray(base["w_debrief_err"]) + np.asarray(delta["w_debrief_err"][0] @ delta["w_debrief_err"][1])
        w_o = np.asarray(base["w_debrief"]) + np.asarray(delta["w_debrief"])
        by_hand = o[i, :d] @ w_e + o[i, d:] @ w_o
        enc = tf.Eff(base, delta)
        np.testing.assert_allclose(np.asarray(debrief.embed(enc, jnp.asarray(o[i]))), by_hand, rtol=1e-4, atol=1e-5)
        # the step's tokens: only the first thinking token's input changes, by the embedding
        phi, prev, pos = jnp.zeros(d), c0["action"][i], jnp.array([31.0, 31.0])
        intero = tf.interoception(c1["body"][i], agent.body)
        told = tf.step_tokens(enc, phi, prev, 1, pos, intero, agent.mem, ag.dm, jnp.asarray(by_hand))
        plain = tf.step_tokens(enc, phi, prev, 1, pos, intero, agent.mem, ag.dm)
        np.testing.assert_allclose(np.asarray(told - plain)[1], by_hand, rtol=1e-4, atol=1e-5)
        assert np.abs(np.asarray(told - plain)[np.arange(ag.dm.s) != 1]).max() == 0.0
        # act 1's action was chosen from that input: its logits, again from the hand outcome, and without
        cache = (agent.cache_k, agent.cache_v, agent.cache_step)
        logits = []
        for outcome in (jnp.asarray(o[i]), jnp.zeros(o.shape[1])):
            x, *_, (_, head, _) = ag.forward(agent.theta, agent, c1["obs_n"][i], prev, 1, pos, intero, agent.mem, cache,
                                          outcome)
            logits.append(np.asarray(tf.policy_value(head, tf.read_out(head, x[ag.dm.action_index]))[0]))
        np.testing.assert_allclose(logits[0], np.asarray(c1["out"]["logits"][i]), rtol=1e-4, atol=1e-5)
        assert np.abs(logits[1] - logits[0]).max() > 1e-6  # the debrief reaches the action

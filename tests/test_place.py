"""The sense of place (path integration, dead reckoning) and inverse dynamics through the layers.

One compile serves the tests of the learned place and of inverse dynamics through the layers:
`place_run`, two acts and one learn step of a tiny learner with agents.place_input=false and
agents.inverse_input=layers, on the shared tiny state's agents (the state's structure does not
depend on either switch) along a path whose positions the test chooses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evodevo.agents import inverse, place
from evodevo.agents import transformer as tf
from evodevo.agents.kind import Senses

from conftest import beside_nothing, tiny_config as tiny  # noqa: E402

PATH = np.array([[10, 20], [40, 5]])  # true positions at the two acts: spawn, then far away


@pytest.fixture(scope="module")
def place_run(sim, state):
    """Acts on s_0 (a newborn: no previous action) and s_1 at the positions of PATH, then the learn
    step's gradient of transition 0 -> 1 and inverse dynamics' own gradient."""
    from evodevo.agents.learner import Learner

    ag = Learner(tiny("agents.place_input=false", "agents.inverse_input=layers").agents, sim.world)
    hp, n = sim.hp.agents, sim.n

    @jax.jit
    def run(agents, obs, key):
        prev, est, steps, pending = jnp.full(n, -1, jnp.int32), [], [], None
        for t in range(2):
            senses = Senses(age=jnp.full(n, t + 1), pos=jnp.broadcast_to(jnp.asarray(PATH[t]), (n, 2)),
                            prev_action=prev, body=jnp.full((n, 5), 0.5), **beside_nothing(n))
            carried = ag.carry(pending) if t else None  # the last act's, as the simulation carries it
            prev, agents, pending = ag.act(hp, agents, obs * (1.0 - 0.5 * t), senses, jax.random.fold_in(key, t))
            est.append(agents.place_est)
            steps.append(agents.place_step)
        _, _, metrics, *_ = ag._gradient(hp, agents, carried, pending, senses, jnp.zeros(n, bool))
        # inverse dynamics alone: its own weights' gradient plus its cotangent pulled back through act 0
        _, _, _, g_weights, g_token = inverse.gradient(ag, hp, agents, carried, pending)
        cot = jax.tree.map(jnp.zeros_like, carried["out"]) | {"token": g_token}
        (g_through,) = ag._pullback(carried, pending, agents)(cot)
        return jnp.stack(est), jnp.stack(steps), metrics, g_weights + g_through

    est, steps, metrics, g_inverse = run(state.agents, state.world.obs, jax.random.PRNGKey(5))
    return ag, np.asarray(est), np.asarray(steps), jax.device_get(metrics), g_inverse


# --------------------------------------------------------------------------- the sense of place


def test_place_input_on_the_estimate_is_the_true_position(sim, state):
    """The default (agents.place_input=true): the grid code encodes the true position, whatever the
    agent's own reckoning says; after a chunk every agent's estimate is where its player stands."""
    garbage = jnp.array([[3.5, -7.0]])
    np.testing.assert_array_equal(
        np.asarray(place.estimate(True, garbage, garbage, jnp.array([[12, 30]]), jnp.array([4]))), [[12.0, 30.0]])
    s, out = sim.run_chunk(jax.tree.map(jnp.copy, state), 10)
    lived = np.asarray(s.slots.birth_step < s.step)  # not born on the last step (respawned, estimate reset)
    assert lived.any()
    np.testing.assert_array_equal(np.asarray(s.agents.place_est)[lived], np.asarray(sim.world.position(s.world))[lived])
    assert np.isfinite(np.asarray(out["metrics"]["place_error"][2:10])).all()
    assert "place_drift" not in out["metrics"]


def test_dead_reckoning_on_a_hand_built_path():
    """agents.place_input=false: a newborn's estimate is its spawn position; after that each act's
    estimate is the last one plus the displacement predicted there, whatever the true position."""
    true = jnp.array([[10, 20], [11, 20], [30, 2], [30, 3]])  # spawn, then wherever the world took it
    predicted = jnp.array([[1.0, 0.0], [0.5, -1.0], [0.0, 0.25], [-2.0, 0.0]])
    est, step = jnp.array([99.0, 99.0]), jnp.array([5.0, 5.0])  # whatever a dead predecessor left
    seen = []
    for t in range(4):
        est = place.estimate(False, est, step, true[t], jnp.array(-1 if t == 0 else 3))
        step = predicted[t]
        seen.append(np.asarray(est))
    np.testing.assert_array_equal(seen, [[10, 20], [11, 20], [11.5, 19], [11.5, 19.25]])


def test_dead_reckoning_in_the_act(place_run):
    """The act keeps the estimate: anchored at the spawn (first act), then the last act's estimate
    plus the displacement its place head predicted, not the true position (PATH jumps away)."""
    _, est, steps, metrics, _ = place_run
    np.testing.assert_array_equal(est[0], np.broadcast_to(PATH[0], est[0].shape).astype(np.float32))
    np.testing.assert_array_equal(est[1], est[0] + steps[0])
    assert np.abs(est[1] - PATH[1]).max() > 10  # it is not the GPS
    assert np.abs(steps).max() > 0  # the head predicted something: the test could fail
    np.testing.assert_allclose(metrics["place_drift"], np.linalg.norm(est[1] - PATH[1], axis=-1), rtol=1e-6)


def test_place_head_target_is_the_displacement_of_the_chosen_actions_step(sim, state, place_run):
    """The place head's target for transition 0 -> 1 is PATH[1] - PATH[0] = (30, -15), hand-checked
    against the displacement predicted at act 0; and its prediction depends on the chosen action."""
    _, _, steps, metrics, _ = place_run
    pred = steps[0]  # [N, 2] predicted at act 0 for the action it chose
    np.testing.assert_allclose(metrics["loss_position"], ((pred - [30.0, -15.0]) ** 2).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(metrics["place_error"], np.hypot(pred[:, 0] - 30.0, pred[:, 1] + 15.0), rtol=1e-5)
    # the head reads the forward model's hidden layer, which sees the action
    head = tf.Eff(jax.tree.map(lambda x: x[0], state.agents.base["head"]), None)  # slot 0's inherited head
    h, phi = jnp.linspace(-1.0, 1.0, sim.kind.dm.d), jnp.linspace(1.0, -1.0, sim.kind.dm.d)
    moves = [np.asarray(tf.predictions(head, h, a, phi)["pos"]) for a in (1, 2)]
    assert np.abs(moves[0] - moves[1]).max() > 1e-4


# --------------------------------------------------------------------------- inverse dynamics


def layer_delta_grad(ag, g):
    """{name: |gradient| summed over a slot} of the layer genes' trainable deltas, per layer slot [N, L]."""
    layers = jax.vmap(ag.unravel)(g)["delta"]["layer"]
    return sum(np.abs(np.asarray(leaf)).reshape(leaf.shape[:2] + (-1,)).sum(-1) for leaf in jax.tree.leaves(layers))


def test_inverse_dynamics_through_the_layers_reaches_the_layer_genes(state, place_run):
    ag, _, _, _, g_inverse = place_run
    assert np.isfinite(np.asarray(g_inverse)).all()
    per_slot = layer_delta_grad(ag, g_inverse)
    active = np.asarray(state.agents.active)
    assert (per_slot[active] > 0).all()  # every active layer of every agent learns from it
    assert (per_slot[~active] == 0).all()  # an inactive slot is an identity


def test_inverse_dynamics_from_the_encoder_gives_the_layers_nothing(sim, state):
    """inverse_input=encoder: the loss reads re-encoded observations only."""
    from evodevo.agents.learner import Learner

    ag, n = Learner(tiny("agents.inverse_input=encoder").agents, sim.world), sim.n
    obs = state.world.obs
    carried = {"obs_n": obs, "action": jnp.arange(n, dtype=jnp.int32), "out": {}}
    pending = {"obs_n": obs[::-1], "phi_now": jnp.zeros((n, ag.dm.d))}
    _, ce, _, g_weights, g_token = jax.jit(lambda a: inverse.gradient(ag, sim.hp.agents, a, carried, pending))(state.agents)
    assert g_token is None and np.isfinite(np.asarray(ce)).all()
    assert float(jnp.abs(g_weights).sum()) > 0  # the encoder and the head learn: the test could fail
    assert (layer_delta_grad(ag, g_weights) == 0).all()

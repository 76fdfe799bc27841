"""The `transformer` agent kind: built from genes, learning online from curiosity (`kind.AgentKind`).

Per step and agent (all vmapped over slots, one update per agent per step):
  act    normalise obs_t, forward the step's tokens over the KV cache with a VJP kept open (the grid code of
         `place.estimate`; the last step's outcome, `debrief`), sample a_t, write the cache and the memory
         (`memory`), keep the place estimate and the displacement predicted for a_t (and the latent expected next)
  learn  after the world step: value of s_{t+1} (no gradient), intrinsic reward r_t (`drives.reward`: the
         error of the latent next-state prediction, a change from the inherited encoder's fixed latent of s_t,
         (+ RND novelty) weighed with the drives), less the life's average (agents.center_reward), scaled by the
         running std of the intrinsic return; one optax step (clip, Adam, faster developmental gates, a norm bound;
         with agents.obgd_step the actor-critic's TD(lambda) steps apart, by ObGD) on actor-critic + forward-model
         + inverse-dynamics + reward + place losses. Non-finite losses or weights mark the agent `broken`.
The trainable vector of an agent is flat ([P] per slot): low-rank deltas on the inherited genes plus gates
(learn=lowrank), or all weights plus gates (learn=full). Floats come in as `hp` (traced); this holds static shapes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from evodevo import treeutil
from evodevo.agents import debrief, development, drives, inverse, memory, place
from evodevo.agents.fast import Readout, inherit, learn_readouts, reads, width
from evodevo.agents import transformer as tf
from evodevo.agents.kind import BODY, NEEDS, LifeEnd, Senses
from evodevo.agents.normalize import RewardScale, Welford, observe
from evodevo.agents.optim import decay_trace, obgd, optimizer
from evodevo.config import AgentsConfig, statics

CARRIED = ("out", "action", "obs_n", "pos", "phi_now", "body", "danger")  # what of an act the next learn reads


@struct.dataclass
class AgentState:
    base: dict  # inherited gene weights: {"encoder": ..., "layer": (L per-slot dicts), "head": ..., "drive": ...}
    active: jax.Array  # [L] bool active layer slots (a prefix)
    developmental: jax.Array  # [L] bool layers grown in during this life
    theta: jax.Array  # [P] trainable vector
    opt: Any  # optax state of `optimizer` over theta
    obs_stats: Welford  # running mean/var of observations
    reward_scale: RewardScale
    cache_k: jax.Array  # [L, T*S, D]
    cache_v: jax.Array  # [L, T*S, D]
    cache_step: jax.Array  # [T*S] int32 age at which each cached token was written, -1 empty
    mem: jax.Array  # [M, D] memory carried to the next step
    mem_sens: Any  # memory.Sensitivity of `mem` to the write's weights (agents.memory=learned; None otherwise)
    past: Any  # [k, D] phi0 of the last k = agents.recall observations (`memory.recall`; None without)
    place_est: jax.Array  # [2] float32 the position the grid code encoded at the last act (`place.estimate`)
    place_step: jax.Array  # [2] float32 the displacement the place head predicted there for the chosen action
    body: jax.Array  # [BODY] the body as sensed at the last act (for its change and the drive reward)
    danger: jax.Array  # [] the health left in the hostile mobs near it at the last act (agents.drive_danger)
    expected: Any  # [D] phi0 of the next observation as the last act expected it (agents.debrief; None otherwise)
    trace: Any  # [P] eligibility trace of the actor-critic (agents.lam > 0; None otherwise)
    fast: Any  # fast.Readout, the per-life linear policy and value (agents.fast_readout > 0; None otherwise)
    reward: jax.Array  # [] last raw intrinsic reward (for the viewer)
    loss_first: jax.Array  # [] mean forward loss over the first plateau_window steps of life
    loss_ema: jax.Array  # [] running average of the forward loss (development, learning progress)
    loss_ref: jax.Array  # [] loss_ema at the last plateau check


class Learner:
    def __init__(self, cfg: AgentsConfig, world):
        self.cfg = statics(cfg)  # sizes and switches only: floats come in as `hp`
        self.n, self.obs_dim, self.num_actions = world.n, world.obs_dim, world.num_actions
        self.do_action = world.action_names.index("do")  # agents.instinct_do leans founders toward it
        self.move_actions = tuple(world.action_names.index(a) for a in ("left", "right", "up", "down"))
        self.drive_init = (self.num_actions if cfg.instinct else 0, cfg.instinct_do, self.do_action, cfg.reflex,
                           len(world.neighbour_kinds), cfg.seek)
        self.dm = tf.Dims.make(cfg, world)
        self.fast_dim = width(cfg.fast_input, self.dm.d, len(world.neighbour_kinds))  # what the readout reads
        self.memory_kind = cfg.memory if self.dm.m > 0 else "frozen"  # `memory.next_memory` (M = 0: nothing to write)
        self.written_memory, self.learned_memory = self.memory_kind != "frozen", self.memory_kind == "learned"
        key, genes = jax.random.PRNGKey(0), self.genes()
        self.unravel_gene = {k: treeutil.traced_layout(lambda f=f: f(key))[1] for k, f in genes.items()}

        def example():  # the trainable vector of an agent of founder genes (traced only)
            examples = {k: f(key) for k, f in genes.items()}
            layers = jax.tree.map(lambda x: jnp.broadcast_to(x, (self.dm.l_max,) + x.shape), examples["layer"])
            return self._trainable_init(key, dict(examples, layer=layers), jnp.zeros((self.dm.l_max, 2)))

        shapes, self.unravel = treeutil.traced_layout(example)
        positions = treeutil.flat_positions(shapes)  # each weight's index in the flat vector
        self.n_params = sum(x.size for x in jax.tree.leaves(positions))
        self.gate_index = positions["gates"].astype(np.int32)  # [L, 2]
        self.memory_index = memory.coordinates(cfg.learn, positions) if self.learned_memory else None
        self.debrief_index = memory.coordinates(cfg.learn, positions, debrief.WEIGHTS) if cfg.debrief else None
        self.rnd_target = None
        if cfg.rnd:  # a fixed random network (never learns, never evolves): a constant of the step
            k1, k2 = jax.random.split(jax.random.PRNGKey(1))
            self.rnd_target = {"w1": np.asarray(tf._dense(k1, world.obs_dim, 64)),
                               "w2": np.asarray(tf._dense(k2, 64, self.dm.rnd_dim))}

    def genes(self) -> dict:
        genes = {k: (lambda key, f=f: f(key, self.dm)) for k, f in tf.GENE_INIT.items()}
        if self.written_memory:  # the write's weights belong to the encoder gene: inherited, evolved (learned)
            genes["encoder"] = memory.encoder_with_write(genes["encoder"], self.dm)
        if self.cfg.debrief:  # its embedding too: the first thinking token's input (`debrief`)
            genes["encoder"] = debrief.encoder_with_debrief(genes["encoder"], self.dm)
        if self.cfg.recall:  # and the recall head's (`memory.recall`)
            genes["encoder"] = memory.encoder_with_recall(genes["encoder"], self.dm)
        return dict(genes, drive=lambda key: drives.init_drive(key, *self.drive_init))

    def learned_kinds(self) -> tuple[str, ...]:  # every gene but the drive: what the agent wants is not learned
        return tuple(tf.GENE_INIT)

    def _trainable_init(self, key, base, gates):
        if self.cfg.learn == "full":  # every weight but the drives (what the agent wants is not learned)
            return {"params": {k: v for k, v in base.items() if k != "drive"}, "gates": gates}
        ke, kl, kh = jax.random.split(key, 3)
        layer0 = jax.tree.map(lambda x: x[0], base["layer"])
        return {
            "delta": {
                "encoder": tf.init_delta(ke, base["encoder"], self.cfg.rank),
                "layer": jax.vmap(lambda k: tf.init_delta(k, layer0, self.cfg.rank))(jax.random.split(kl, self.dm.l_max)),
                "head": tf.init_delta(kh, base["head"], self.cfg.rank, ("w_pi",) if self.cfg.dense_policy else ()),
            }, "gates": gates}

    def unflatten(self, genes: dict) -> dict:
        """Flat genes {kind: [P], "layer": [L, P]} -> named tensors."""
        return {k: jax.vmap(self.unravel_gene[k])(x) if k == "layer" else self.unravel_gene[k](x)
                for k, x in genes.items()}

    def flatten(self, named: dict) -> dict:
        """Inverse of `unflatten`."""
        ravel = lambda t: ravel_pytree(t)[0]  # noqa: E731 - sorted keys: the pool's layout too
        return {k: jax.vmap(ravel)(x) if k == "layer" else ravel(x) for k, x in named.items()}

    def newborn(self, genes: dict, active, gates, key) -> AgentState:
        """One agent (no slot axis): inherited genes (flat), active layer slots, gate alphas."""
        base = self.unflatten(genes)
        theta, _ = ravel_pytree(self._trainable_init(key, base, gates))
        base = tf.hold(tf.unstack_layers(base), self.cfg.weights_dtype)
        dm = self.dm
        c = dm.t * dm.s
        return AgentState(
            base=base, active=active, developmental=jnp.zeros_like(active), theta=theta,
            opt=optimizer().init(theta), obs_stats=Welford.zeros((self.obs_dim,)), reward_scale=RewardScale.zeros(),
            cache_k=jnp.zeros((dm.l_max, c, dm.d)), cache_v=jnp.zeros((dm.l_max, c, dm.d)),
            cache_step=jnp.full((c,), -1, jnp.int32), mem=jnp.zeros((dm.m, dm.d)), reward=jnp.zeros(()),
            mem_sens=memory.Sensitivity.zeros(dm.m, dm.d) if self.learned_memory else None,
            past=jnp.zeros((self.cfg.recall, dm.d)) if self.cfg.recall else None,
            place_est=jnp.zeros(2), place_step=jnp.zeros(2),  # the first act senses where it was born
            body=jnp.ones(len(BODY)).at[NEEDS:].set(0.0), danger=jnp.zeros(()),  # born full, awake, unthreatened
            expected=jnp.zeros(dm.d) if self.cfg.debrief else None, trace=jnp.zeros_like(theta) if self.cfg.lam > 0.0 else None,
            fast=Readout.zeros(self.num_actions, self.fast_dim, self.cfg.fast_center) if self.cfg.fast_readout else None,
            loss_first=jnp.zeros(()), loss_ema=jnp.zeros(()), loss_ref=jnp.full((), jnp.inf, jnp.float32),
        )

    def weights(self, theta, base):
        """(encoder, layers, head, gates) effective weights of one agent: `layers` one `tf.Eff` per slot."""
        tr = self.unravel(theta)
        pick = lambda i, tree: jax.tree.map(lambda w: w[i], tree)  # noqa: E731 - a slice of theta: small
        if self.cfg.learn == "full":
            p = tr["params"]
            layers = [tf.Eff(pick(i, p["layer"]), None) for i in range(self.dm.l_max)]
            return tf.Eff(p["encoder"], None), layers, tf.Eff(p["head"], None), tr["gates"]
        d = tr["delta"]
        layers = [tf.Eff(base["layer"][i], pick(i, d["layer"])) for i in range(self.dm.l_max)]
        return tf.Eff(base["encoder"], d["encoder"]), layers, tf.Eff(base["head"], d["head"]), tr["gates"]

    def forward(self, theta, agent: AgentState, obs_n, prev_action, age, pos, body, mem_in, cache, outcome=None):
        """One step's tokens through the agent (`body` its interoception, `outcome` the last step's, agents.debrief):
        (x [S, D], k_new, v_new, phi, (enc, head, written)), `written` [M, D] what the memory writes (agents.memory_write):
        the memory tokens' outputs, those less their inputs (the layers' update), or the step's observation token."""
        enc, layers, head, gates = self.weights(theta, agent.base)
        phi = tf.encode_obs(enc, obs_n, self.dm)
        if self.learned_memory:  # its derivative with respect to the write's weights: the carried sensitivities
            mem_in = memory.read(enc["mem_w"], enc["mem_nu"], mem_in, agent.mem_sens)
        told = None if outcome is None else debrief.embed(enc, outcome)
        x_in = tf.step_tokens(enc, phi, prev_action, age, pos, body, mem_in, self.dm, told)
        q_step = jnp.full((self.dm.s,), age, jnp.int32)
        x, k_new, v_new = tf.run_layers(x_in, layers, gates, agent.active, *cache, q_step, self.dm)
        mem = slice(1 + self.dm.k, None)  # the memory tokens
        written = {"outputs": x[mem], "update": x[mem] - x_in[mem], "input": jnp.broadcast_to(x_in[0], x[mem].shape)}
        return x, k_new, v_new, phi, (enc, head, written[self.cfg.memory_write])

    def write_cache(self, agent: AgentState, k_new, v_new, age):
        """Store this step's keys/values in the ring buffer slot of step `age`."""
        s = self.dm.s
        start = (age % self.dm.t) * s
        ck = jax.lax.dynamic_update_slice_in_dim(agent.cache_k, k_new, start, axis=1)
        cv = jax.lax.dynamic_update_slice_in_dim(agent.cache_v, v_new, start, axis=1)
        cs = jax.lax.dynamic_update_slice_in_dim(agent.cache_step, jnp.full((s,), age, jnp.int32), start, axis=0)
        return agent.replace(cache_k=ck, cache_v=cv, cache_step=cs)

    def _target_latent(self, agent: AgentState, obs):
        """phi0(s): the latent of a raw observation under the *inherited* encoder. Neither within-life learning
        nor the running observation statistics move it, so the prediction error (the curiosity signal) is
        stationary: it falls where the agent has learned how the world goes."""
        return tf.encode_obs(tf.Eff(agent.base["encoder"], None), obs, self.dm)

    def _act_one(self, theta, agent: AgentState, obs_n, prev_action, age, pos, body, key, phi_now, outcome, beside):
        cache = (agent.cache_k, agent.cache_v, agent.cache_step)
        intero = tf.interoception(body, agent.body)
        x, k_new, v_new, phi, (enc, head, written) = self.forward(theta, agent, obs_n, prev_action, age, pos,
                                                                  intero, agent.mem, cache, outcome)
        h = tf.read_out(head, x[self.dm.action_index])
        logits, value = tf.policy_value(head, h)
        out = {}
        if agent.fast is not None:  # (the network's own gradient does not pass through it)
            out, added = agent.fast.act(reads(self.cfg.fast_input, jax.lax.stop_gradient(h), *beside[:3], beside[4]), out)
            logits, value = jax.tree.map(jnp.add, (logits, value), added)
        if self.cfg.instinct or self.cfg.reflex > 0:  # an inherited leaning: a constant that learning acts around
            out["innate"] = jax.lax.stop_gradient(drives.innate_logits(
                agent.base["drive"], self.move_actions, self.do_action, self.num_actions, *beside[:4]))
            logits = logits + out["innate"]
        action = jax.random.categorical(key, jax.lax.stop_gradient(logits)).astype(jnp.int32)
        out = {"logits": logits, "value": value, **out, **tf.predictions(head, h, action, phi_now)}
        if self.cfg.inverse_input == "layers":  # s_t after the layers, as inverse dynamics reads it
            out["token"] = h
        if self.cfg.recall:
            out |= memory.recall(enc, x[1 + self.dm.k:], agent.past, age, self.cfg.recall)
        mem_out, sens = memory.next_memory(self.memory_kind, enc, agent.mem, agent.mem_sens, written)
        aux = (action, jax.lax.stop_gradient(k_new), jax.lax.stop_gradient(v_new), mem_out, sens)
        return out, aux

    def act(self, hp: AgentsConfig, agents: AgentState, obs, senses: Senses, key):
        obs_stats, obs_n = jax.vmap(observe, in_axes=(0, 0, None, None))(agents.obs_stats, obs, hp.obs_clip,
                                                                         self.cfg.obs_norm)
        keys = jax.random.split(key, self.n)
        phi_now = jax.vmap(self._target_latent)(agents, obs)
        here = place.estimate(self.cfg.place_input, agents.place_est, agents.place_step, senses.pos, senses.prev_action)
        danger = jnp.zeros(self.n) if senses.danger is None else senses.danger
        outcome = debrief.outcome(agents.expected, phi_now, agents.body, senses.body,
                                  self.drive_weights(hp, agents, senses.control), agents.reward_scale,
                                  senses.prev_action < 0, senses.threat, senses.age < hp.play_age,
                                  self.cfg.center_reward, (agents.danger, danger)) if self.cfg.debrief else None

        def batched(theta):
            return jax.vmap(self._act_one)(theta, agents, obs_n, senses.prev_action, senses.age, here,
                                           senses.body, keys, phi_now, outcome,
                                           (senses.near, senses.facing, senses.seen, senses.need, danger))

        out, vjp_fn, (action, k_new, v_new, mem_out, sens) = jax.vjp(batched, agents.theta, has_aux=True)
        # Which of the VJP's residuals are the agents' inherited weights themselves: those are read
        # from the agents when the VJP is used, never carried (they are most of its bytes).
        base = {id(x): i for i, x in enumerate(jax.tree.leaves(agents.base))}
        plan = tuple(base.get(id(x), -1) for x in jax.tree.leaves(vjp_fn))
        pending = {"out": out, "vjp": vjp_fn, "plan": plan, "action": action, "obs_n": obs_n, "pos": senses.pos,
                   "phi_now": phi_now, "body": senses.body, "danger": danger, "outcome": outcome}
        expected = debrief.expectation(phi_now, out["pred"]) if self.cfg.debrief else None
        past = jax.vmap(memory.remember)(agents.past, phi_now, senses.age) if self.cfg.recall else None
        mem_out, sens = memory.forget(senses.control if self.cfg.control == "memory" else None, mem_out, sens)
        agents = agents.replace(obs_stats=obs_stats, mem=mem_out, mem_sens=sens, body=senses.body, danger=danger,
                                place_est=here, place_step=out["pos"], expected=expected, past=past)
        agents = jax.vmap(self.write_cache)(agents, k_new, v_new, senses.age)
        return action, agents, pending

    def carry(self, pending) -> dict:
        """What of this step's act the next step's `learn` needs, as arrays: the step's outputs and
        the VJP's residuals but the inherited weights (the agents hold those)."""
        residuals = tuple(x for x, i in zip(jax.tree.leaves(pending["vjp"]), pending["plan"]) if i < 0)
        return {"residuals": residuals, **{k: pending[k] for k in CARRIED}}

    def _pullback(self, carried: dict, pending, agents: AgentState):
        """The VJP of the act that `carried` was taken from. Its structure is this step's act's (the
        same traced function); its residuals are the carried ones and the agents' inherited weights."""
        treedef = jax.tree.structure(pending["vjp"])
        base, residuals = jax.tree.leaves(agents.base), iter(carried["residuals"])
        return jax.tree.unflatten(treedef, [base[i] if i >= 0 else next(residuals) for i in pending["plan"]])

    def _head_loss(self, hp: AgentsConfig, out, d_phi, action, target_v, delta, r_s, disp):
        """Loss as a function of the act-step outputs (its gradient is the VJP cotangent). With
        eligibility traces (lam > 0) the actor-critic terms are left out: they go through the trace."""
        logp = jax.nn.log_softmax(out["logits"])
        entropy = drives.spread(logp)
        spread = drives.spread(logp, out["innate"]) if self.cfg.innate_prior and "innate" in out else entropy
        policy = -jax.lax.stop_gradient(delta) * logp[action]
        value = 0.5 * (jax.lax.stop_gradient(target_v) - out["value"]) ** 2
        fwd = jnp.mean((out["pred"] - d_phi) ** 2)
        rew, pos = (out["reward"] - r_s) ** 2, jnp.sum((out["pos"] - disp) ** 2)
        total = -hp.entropy * spread + hp.w_forward * fwd + hp.w_reward * rew + hp.w_position * pos
        if self.cfg.lam == 0.0:
            total = total + policy + hp.w_value * value
        return total, {"loss_forward": fwd, "loss_value": value, "entropy": entropy, "loss_position": pos,
                       "place_error": place.distance(out["pos"], disp)}

    def _trace_increment(self, hp: AgentsConfig, out, action):
        """d/d(outputs) of w_value V(s) + log pi(a|s): the cotangent whose VJP enters the trace."""
        logp_grad = jax.nn.one_hot(action, out["logits"].shape[-1]) - jax.nn.softmax(out["logits"])
        return jax.tree.map(jnp.zeros_like, out) | {"logits": logp_grad, "value": jnp.full_like(out["value"], hp.w_value)}

    def _traced_step(self, hp: AgentsConfig, agents: AgentState, out, action, pullback, delta):
        """TD(lambda): e <- gamma lambda e + grad(w_v V + log pi). Returns the new trace, the actor-critic's
        gradient for Adam (-delta e; zero with agents.obgd_step > 0) and ObGD's step (zero without it)."""
        (g_trace,) = pullback(self._trace_increment(hp, out, action))
        trace = decay_trace(agents.trace, g_trace, hp.gamma, self.cfg.lam)
        g_adam = -jnp.where(hp.obgd_step > 0.0, 0.0, 1.0) * delta[:, None] * trace
        return trace, g_adam, obgd(hp.obgd_step, delta, trace, hp.obgd_kappa)

    def _gradient(self, hp: AgentsConfig, agents: AgentState, carried: dict, pending, senses: Senses, terminal):
        """The gradient of transition t (s_t from `carried`, the last step's act; s_{t+1} from
        `pending`, this step's act, whose value is the bootstrap). Returns (gradient [N, P], per-slot
        losses [N] (non-finite where V(s_{t+1}) is), metrics, new reward scale, raw reward, trace, ObGD step)."""
        term = terminal.astype(jnp.float32)
        action, out = carried["action"], carried["out"]
        v1, phi1 = jax.lax.stop_gradient((pending["out"]["value"], pending["phi_now"]))
        d_phi = phi1 - carried["phi_now"]  # the forward model predicts the change: what stays costs nothing
        aux, inv_ce, rnd_err, g_aux, g_token = inverse.gradient(self, hp, agents, carried, pending)  # (+ RND)
        r_fwd = jnp.mean((jax.lax.stop_gradient(out["pred"]) - d_phi) ** 2, axis=-1)
        curiosity = r_fwd + hp.w_rnd * rnd_err if self.cfg.rnd else r_fwd
        w = self.drive_weights(hp, agents, senses.control)
        reward, r_drive = drives.reward(w, curiosity, carried["body"], senses.body, term, senses.threat,
                                        senses.age < hp.play_age, (carried["danger"], pending["danger"]))
        scale = agents.reward_scale.update(reward, term, hp.gamma, self.cfg.center_reward)  # elementwise over slots
        r_s = scale.scale(reward, self.cfg.center_reward)
        target_v = r_s + hp.gamma * (1.0 - term) * v1
        delta = target_v - jax.lax.stop_gradient(out["value"])
        disp = place.displacement(carried["pos"], pending["pos"])

        def total(out):
            loss, parts = jax.vmap(lambda *a: self._head_loss(hp, *a))(out, d_phi, action, target_v, delta, r_s, disp)
            if self.cfg.recall:
                parts = dict(parts, loss_recall=memory.recall_loss(out))
                loss = loss + hp.w_recall * parts["loss_recall"]
            return loss.sum(), (loss, parts)

        (_, (loss, parts)), cot = jax.value_and_grad(total, has_aux=True)(out)
        if g_token is not None:  # inverse dynamics through the layers: one pullback with the heads
            cot = cot | {"token": g_token}
        pullback = self._pullback(carried, pending, agents)
        (g_out,) = pullback(cot)
        trace, ascent = agents.trace, None
        if self.cfg.lam > 0.0:  # actor-critic TD(lambda), through Adam or by ObGD
            trace, g_actor_critic, ascent = self._traced_step(hp, agents, out, action, pullback, delta)
            g_out = g_out + g_actor_critic
            loss = jnp.where(jnp.isfinite(trace).all(-1) & jnp.isfinite(delta), loss, jnp.nan)
        grad = g_out + g_aux
        metrics = {"td_error": delta, "reward_scaled": r_s, "loss_inverse": inv_ce, "value": out["value"],
                   "curiosity": curiosity, "drive_reward": r_drive, **parts,
                   # which objective the gradient clip sees: the heads' losses vs inverse dynamics (+ RND)
                   "grad_norm_heads": jnp.linalg.norm(g_out, axis=-1),
                   "grad_norm_inverse": jnp.linalg.norm(g_aux, axis=-1),
                   "grad_clipped": (jnp.linalg.norm(grad, axis=-1) > hp.grad_clip).astype(jnp.float32)}
        metrics |= {"rnd_error": rnd_err} if self.cfg.rnd else {}
        metrics |= {"obgd_norm": jnp.linalg.norm(ascent, axis=-1)} if ascent is not None else {}
        if not self.cfg.place_input:  # how far dead reckoning has carried the agent's sense of place
            metrics["place_drift"] = place.distance(agents.place_est, senses.pos)
        return grad, jnp.where(jnp.isfinite(v1), loss + aux, jnp.nan), metrics, scale, reward, trace, ascent

    def gate_lr(self, hp: AgentsConfig, developmental):
        """[L, 2] learning-rate multipliers of the gates (`gate_index`): dev_gate_lr for developmental layers."""
        return jnp.broadcast_to(jnp.where(developmental[:, None], hp.dev_gate_lr, 1.0), self.gate_index.shape)

    def learn(self, hp: AgentsConfig, agents: AgentState, carried: dict, pending, senses: Senses, terminal, valid):
        """One update per agent from transition t (see `_gradient`), after this step's act. Slots
        without a transition (`valid` False: newborns, agents that grew a layer since) keep their
        state; an agent whose weights are not finite is `broken` whatever its transition."""
        grad, loss, metrics, scale, reward, trace, ascent = self._gradient(hp, agents, carried, pending, senses, terminal)
        if self.learned_memory:  # the learned write's share of the gradient
            metrics["grad_norm_memory"] = jnp.linalg.norm(grad[:, self.memory_index], axis=-1)
        if self.cfg.debrief:  # the debrief embedding's share
            metrics["grad_norm_debrief"] = jnp.linalg.norm(grad[:, self.debrief_index], axis=-1)
        tx = optimizer(hp.grad_clip, hp.lr, hp.max_update)

        def update(theta, opt, g, developmental):
            step, opt = tx.update(g, opt, theta, coordinates=self.gate_index, factors=self.gate_lr(hp, developmental))
            return optax.apply_updates(theta, step), opt

        theta, opt = jax.vmap(update)(agents.theta, agents.opt, grad, agents.developmental)
        theta = theta if ascent is None else theta + ascent  # (zero unless agents.obgd_step > 0)
        theta, opt = (theta, opt) if self.cfg.learn_network else (agents.theta, agents.opt)
        fast = learn_readouts(agents.fast, self.cfg.fast_readout, carried, metrics["td_error"], hp.gamma * hp.fast_lam)
        learned = dict(theta=theta, opt=opt, reward_scale=scale, reward=reward, trace=trace, fast=fast,
                       **development.track_loss(self.cfg.plateau_window, agents, metrics["loss_forward"], senses.age))
        before = {k: getattr(agents, k) for k in learned}  # only what learning changes (not the inherited weights)
        agents = agents.replace(**treeutil.select(valid & jnp.isfinite(loss), learned, before))
        # the weights it keeps (a slot without a transition: its old ones) checked once, in one pass
        broken = (valid & ~jnp.isfinite(loss)) | ~jnp.isfinite(agents.theta).all(-1)
        metrics = dict(metrics, intrinsic_reward=reward, gate_open=jnp.abs(jnp.tanh(self.gates(agents))).sum(
            axis=(1, 2)) / jnp.maximum(2 * agents.active.sum(-1), 1))
        metrics = {k: jnp.where(valid & ~broken, x, jnp.nan).astype(jnp.float32) for k, x in metrics.items()}
        return agents, broken, metrics

    def instinct(self, agents: AgentState):  # [N, A] the inherited instinct (agents.instinct), or None
        return agents.base["drive"].get("instinct")

    def reflex(self, agents: AgentState):  # [N, R, K] the inherited reflex (agents.reflex), or None
        return agents.base["drive"].get("reflex")

    def drive_weights(self, hp: AgentsConfig, agents: AgentState, control=None):  # [N, len(DRIVES)] (`drives.weights`)
        hand_set = control if self.cfg.control == "drives" else None  # the in-run control of drive evolution
        return drives.weights(self.cfg.drives, hp, agents.base["drive"]["w"], hand_set)

    def gates(self, agents: AgentState):  # [N, L, 2] current gate alphas
        return agents.theta[:, self.gate_index]

    def learned_change(self, agent: AgentState) -> dict:
        """One agent's lifetime learning as flat genes: end-of-life minus inherited weights."""
        tr = self.unravel(agent.theta)
        drive = {"drive": jax.tree.map(jnp.zeros_like, agent.base["drive"])}  # drives are not learned
        if self.cfg.learn == "full":
            base = {k: v for k, v in tf.stack_layers(agent.base).items() if k != "drive"}
            return self.flatten(dict(jax.tree.map(jnp.subtract, tr["params"], base), **drive))
        return self.flatten(dict(jax.tree.map(lambda d: d[0] @ d[1] if isinstance(d, tuple) else d, tr["delta"],
                                              is_leaf=lambda x: isinstance(x, tuple)), **drive))

    def inherit_learning(self, hp: AgentsConfig, born: AgentState, parents: AgentState, src, take) -> AgentState:
        return born.replace(fast=inherit(born.fast, parents.fast, src, jnp.where(take, hp.fast_inherit, 0.0)))

    def life_end(self, agents: AgentState) -> LifeEnd:
        progress = jnp.clip((agents.loss_first - agents.loss_ema) / (agents.loss_first + 1e-8), -1.0, 1.0)
        return LifeEnd(gates=self.gates(agents), progress=progress)

    def wants_layer(self, hp: AgentsConfig, agents: AgentState, ages):
        grow, loss_ref = development.triggers(self.cfg, hp, agents, ages)
        return agents.replace(loss_ref=loss_ref), grow

    def insert_layer(self, agent: AgentState, p, gene, key) -> AgentState:
        return development.insert_gated_layer(self, agent, p, gene, key)

    def bytes_per_slot(self, agents: AgentState) -> int:
        return sum(x.nbytes for x in jax.tree.leaves(agents)) // self.n

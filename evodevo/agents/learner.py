"""The `transformer` agent kind: assembled from the gene pool, learning online from curiosity.

Per step and agent (all vmapped over slots, one update per agent per step):
  act    normalise obs_t, forward the step's tokens over the KV cache with a VJP kept
         open, sample a_t, write the step's keys/values into the cache
  learn  after the world step: value of s_{t+1} (no gradient), intrinsic reward
         r_t = error of the latent next-state prediction (target: the inherited
         encoder's latent of the raw s_{t+1}, fixed during life) (+ optional RND novelty),
         scaled by the running std of the intrinsic return; one Adam step on
         actor-critic TD(0) + forward-model + inverse-dynamics + reward + position
         losses, with a clipped gradient and a norm-bounded update. Non-finite
         losses or weights mark the agent `broken` (the loop kills it).
The trainable vector of an agent is flat ([P] per slot): low-rank deltas on the
inherited genes plus gates (learn=lowrank), or all weights plus gates (learn=full).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.flatten_util import ravel_pytree

from evodevo.agents import transformer as tf
from evodevo.agents.normalize import RewardScale, Welford, normalize
from evodevo.config import Config
from evodevo.genepool import pool as gp


@struct.dataclass
class Genome:
    enc_slot: jax.Array  # [] int32 pool slot of the encoder gene
    layer_slot: jax.Array  # [L] int32 pool slots of the layer genes (0 where inactive)
    active: jax.Array  # [L] bool
    head_slot: jax.Array  # [] int32
    enc_id: jax.Array  # [] int32 gene ids (recorded at birth; slots may be reused later)
    layer_id: jax.Array  # [L] int32, -1 where inactive
    head_id: jax.Array  # [] int32
    gates: jax.Array  # [L, 2] float32 gate alphas (attention, MLP) at birth


@struct.dataclass
class AgentState:
    genome: Genome
    base: dict  # inherited gene weights: {"encoder": ..., "layers": [L, ...], "head": ...}
    theta: jax.Array  # [P] trainable vector
    adam_m: jax.Array  # [P]
    adam_v: jax.Array  # [P]
    adam_t: jax.Array  # [] int32
    obs_stats: Welford  # running mean/var of observations
    reward_scale: RewardScale
    cache_k: jax.Array  # [L, T*S, D]
    cache_v: jax.Array  # [L, T*S, D]
    cache_step: jax.Array  # [T*S] int32 age at which each cached token was written, -1 empty
    mem: jax.Array  # [M, D] memory carried to the next step
    reward: jax.Array  # [] last raw intrinsic reward (for the viewer)


class TransformerAgents:
    def __init__(self, cfg: Config, world):
        self.cfg = cfg
        self.a = cfg.agents
        self.n = world.n
        self.world = world
        self.dm = tf.Dims.make(cfg.agents, world)
        self.map_size = jnp.asarray(world.map_size(), jnp.float32)
        example = self._trainable_init(jax.random.PRNGKey(0), self._example_base(), jnp.zeros((self.dm.l_max, 2)))
        flat, self.unravel = ravel_pytree(example)
        self.n_params = flat.shape[0]

    # ------------------------------------------------------------------ construction

    def _example_base(self):
        dm = self.dm
        k = jax.random.PRNGKey(0)
        layer = tf.init_layer(k, dm)
        return {
            "encoder": tf.init_encoder(k, dm),
            "layers": jax.tree.map(lambda x: jnp.broadcast_to(x, (dm.l_max,) + x.shape), layer),
            "head": tf.init_head(k, dm),
        }

    def _trainable_init(self, key, base, gates):
        if self.a.learn == "full":
            return {"params": base, "gates": gates}
        ke, kl, kh = jax.random.split(key, 3)
        layer_keys = jax.random.split(kl, self.dm.l_max)
        layer0 = jax.tree.map(lambda x: x[0], base["layers"])
        return {
            "delta": {
                "encoder": tf.init_delta(ke, base["encoder"], self.a.rank),
                "layers": jax.vmap(lambda k: tf.init_delta(k, layer0, self.a.rank))(layer_keys),
                "head": tf.init_delta(kh, base["head"], self.a.rank),
            },
            "gates": gates,
        }

    def init(self, key):
        kp, kr, ka = jax.random.split(key, 3)
        caps = {"encoder": self.cfg.genepool.encoder_genes, "layer": self.cfg.genepool.layer_genes,
                "head": self.cfg.genepool.head_genes}
        inits = {k: (lambda key, f=f: f(key, self.dm)) for k, f in tf.GENE_INIT.items()}
        k1, k2 = jax.random.split(kr)
        rnd_target = {"w1": tf._dense(k1, self.world.obs_dim, 64), "w2": tf._dense(k2, 64, self.dm.rnd_dim)}
        pool = gp.init_pool(kp, caps, inits, rnd_target)
        agents = jax.vmap(lambda k: self.newborn(pool, k))(jax.random.split(ka, self.n))
        return agents, pool

    def sample_genome(self, pool: gp.GenePool, key) -> Genome:
        """Uniform genome from the living genes (the evolution issue replaces this with selection)."""
        ke, kl, kh = jax.random.split(key, 3)
        l_max, depth = self.dm.l_max, self.a.init_depth
        enc = gp.sample_alive(ke, pool.encoder, ())
        layers = gp.sample_alive(kl, pool.layer, (l_max,))
        head = gp.sample_alive(kh, pool.head, ())
        active = jnp.arange(l_max) < depth
        return Genome(
            enc_slot=enc, layer_slot=jnp.where(active, layers, 0), active=active, head_slot=head,
            enc_id=pool.encoder.gene_id[enc], layer_id=jnp.where(active, pool.layer.gene_id[layers], -1),
            head_id=pool.head.gene_id[head],
            gates=jnp.full((l_max, 2), self.a.init_gate, jnp.float32) * active[:, None],
        )

    def newborn(self, pool: gp.GenePool, key, genome: Genome | None = None) -> AgentState:
        """One agent (no slot axis): genome -> weights gathered from the pool, fresh learner state."""
        kg, kt = jax.random.split(key)
        genome = self.sample_genome(pool, kg) if genome is None else genome
        base = {
            "encoder": gp.gather(pool.encoder, genome.enc_slot),
            "layers": gp.gather(pool.layer, genome.layer_slot),
            "head": gp.gather(pool.head, genome.head_slot),
        }
        theta, _ = ravel_pytree(self._trainable_init(kt, base, genome.gates))
        dm = self.dm
        c = dm.t * dm.s
        return AgentState(
            genome=genome, base=base, theta=theta, adam_m=jnp.zeros_like(theta), adam_v=jnp.zeros_like(theta),
            adam_t=jnp.int32(0), obs_stats=Welford.zeros((self.world.obs_dim,)), reward_scale=RewardScale.zeros(),
            cache_k=jnp.zeros((dm.l_max, c, dm.d)), cache_v=jnp.zeros((dm.l_max, c, dm.d)),
            cache_step=jnp.full((c,), -1, jnp.int32), mem=jnp.zeros((dm.m, dm.d)), reward=jnp.zeros(()),
        )

    # ------------------------------------------------------------------ the function

    def weights(self, theta, base):
        """(encoder, layers_base, layers_delta, head, gates) effective weights of one agent."""
        tr = self.unravel(theta)
        if self.a.learn == "full":
            p = tr["params"]
            return tf.Eff(p["encoder"], None), p["layers"], None, tf.Eff(p["head"], None), tr["gates"]
        d = tr["delta"]
        return (tf.Eff(base["encoder"], d["encoder"]), base["layers"], d["layers"],
                tf.Eff(base["head"], d["head"]), tr["gates"])

    def forward(self, theta, agent: AgentState, obs_n, prev_action, age, pos, mem_in, cache):
        """One step's tokens through the agent. Returns (x [S, D], k_new, v_new, phi, weights)."""
        enc, lb, ld, head, gates = self.weights(theta, agent.base)
        phi = tf.encode_obs(enc, obs_n, self.dm)
        x = tf.step_tokens(enc, phi, prev_action, age, pos, mem_in, self.dm)
        q_step = jnp.full((self.dm.s,), age, jnp.int32)
        x, k_new, v_new = tf.run_layers(x, lb, ld, gates, agent.genome.active, *cache, q_step, self.dm)
        return x, k_new, v_new, phi, (enc, head)

    def write_cache(self, agent: AgentState, k_new, v_new, age):
        """Store this step's keys/values in the ring buffer slot of step `age`."""
        s = self.dm.s
        start = (age % self.dm.t) * s
        ck = jax.lax.dynamic_update_slice_in_dim(agent.cache_k, k_new, start, axis=1)
        cv = jax.lax.dynamic_update_slice_in_dim(agent.cache_v, v_new, start, axis=1)
        cs = jax.lax.dynamic_update_slice_in_dim(agent.cache_step, jnp.full((s,), age, jnp.int32), start, axis=0)
        return agent.replace(cache_k=ck, cache_v=cv, cache_step=cs)

    # ------------------------------------------------------------------ act

    def _act_one(self, theta, agent: AgentState, obs_n, prev_action, age, pos, key):
        cache = (agent.cache_k, agent.cache_v, agent.cache_step)
        x, k_new, v_new, phi, (enc, head) = self.forward(theta, agent, obs_n, prev_action, age, pos, agent.mem, cache)
        x_act = x[self.dm.action_index]
        logits, _ = tf.policy_value(head, x_act)
        action = jax.random.categorical(key, jax.lax.stop_gradient(logits)).astype(jnp.int32)
        out = tf.heads(head, x_act, action)
        mem_out = jax.lax.stop_gradient(x[1 + self.dm.k:])
        aux = (action, jax.lax.stop_gradient(k_new), jax.lax.stop_gradient(v_new), mem_out)
        return out, aux

    def act(self, agents: AgentState, pool, obs, ctx, key):
        obs_stats = jax.vmap(Welford.update)(agents.obs_stats, obs)
        obs_n = jax.vmap(normalize, in_axes=(0, 0, None))(obs_stats, obs, self.a.obs_clip)
        keys = jax.random.split(key, self.n)
        age = ctx["age"]

        def batched(theta):
            return jax.vmap(self._act_one)(theta, agents, obs_n, ctx["prev_action"], age, ctx["pos"], keys)

        out, vjp_fn, (action, k_new, v_new, mem_out) = jax.vjp(batched, agents.theta, has_aux=True)
        agents = jax.vmap(self.write_cache)(agents.replace(obs_stats=obs_stats), k_new, v_new, age)
        agents = agents.replace(mem=mem_out)
        pending = {"out": out, "vjp": vjp_fn, "action": action, "obs_n": obs_n, "pos": ctx["pos"]}
        return action, pending

    # ------------------------------------------------------------------ learn

    def _next_value(self, theta, agent: AgentState, obs_n1, obs1, action, age1, pos1):
        """V(s_{t+1}) (no gradient) and the forward model's target: the latent of the raw s_{t+1}
        under the *inherited* encoder. Neither within-life learning nor the running observation
        statistics move this target, so the prediction error (the curiosity signal) is
        stationary: it falls where the agent has learned how the world goes."""
        cache = (agent.cache_k, agent.cache_v, agent.cache_step)
        x, *_, (enc, head) = self.forward(theta, agent, obs_n1, action, age1, pos1, agent.mem, cache)
        _, v1 = tf.policy_value(head, x[self.dm.action_index])
        return v1, tf.encode_obs(tf.Eff(agent.base["encoder"], None), obs1, self.dm)

    def _aux_loss(self, theta, agent: AgentState, obs_n, obs_n1, action, rnd_target):
        """Losses that need s_{t+1} with a gradient: inverse dynamics (+ RND predictor)."""
        enc, _, _, head, _ = self.weights(theta, agent.base)
        phi = tf.encode_obs(enc, obs_n, self.dm)
        phi1 = tf.encode_obs(enc, obs_n1, self.dm)
        logp = jax.nn.log_softmax(tf.inverse_logits(head, phi, phi1))
        loss = -self.a.w_inverse * logp[action]
        rnd_err = jnp.zeros(())
        if self.a.rnd:
            target = jnp.tanh(obs_n1 @ rnd_target["w1"]) @ rnd_target["w2"]
            rnd_err = jnp.mean((tf.rnd_prediction(head, jax.lax.stop_gradient(phi1)) - target) ** 2)
            loss = loss + self.a.w_rnd * rnd_err
        return loss, (-logp[action], rnd_err)

    def _head_loss(self, out, phi1, action, target_v, delta, r_s, pos_t):
        """Loss as a function of the act-step outputs (its gradient is the VJP cotangent)."""
        a = self.a
        logp = jax.nn.log_softmax(out["logits"])
        entropy = -(jnp.exp(logp) * logp).sum()
        policy = -jax.lax.stop_gradient(delta) * logp[action] - a.entropy * entropy
        value = 0.5 * (jax.lax.stop_gradient(target_v) - out["value"]) ** 2
        fwd = jnp.mean((out["pred"] - phi1) ** 2)
        rew = (out["reward"] - r_s) ** 2
        pos = jnp.sum((out["pos"] - pos_t) ** 2)
        total = policy + a.w_value * value + a.w_forward * fwd + a.w_reward * rew + a.w_position * pos
        return total, {"loss_forward": fwd, "loss_value": value, "entropy": entropy, "loss_position": pos}

    def _update_one(self, theta, m, v, t, grad):
        a = self.a
        gnorm = jnp.linalg.norm(grad)
        grad = grad * jnp.minimum(1.0, a.grad_clip / (gnorm + 1e-12))
        t = t + 1
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        mhat = m / (1 - 0.9**t)
        vhat = v / (1 - 0.999**t)
        step = a.lr * mhat / (jnp.sqrt(vhat) + 1e-8)
        step = step * jnp.minimum(1.0, a.max_update / (jnp.linalg.norm(step) + 1e-12))
        return theta - step, m, v, t

    def learn(self, agents: AgentState, pool, pending, obs, ctx, terminal, key):
        a = self.a
        term = terminal.astype(jnp.float32)
        obs_n1 = jax.vmap(normalize, in_axes=(0, 0, None))(agents.obs_stats, obs, a.obs_clip)
        action = pending["action"]
        v1, phi1 = jax.vmap(self._next_value)(agents.theta, agents, obs_n1, obs, action, ctx["age"], ctx["pos"])
        v1, phi1 = jax.lax.stop_gradient((v1, phi1))
        out = pending["out"]

        (aux, (inv_ce, rnd_err)), g_aux = jax.vmap(
            jax.value_and_grad(self._aux_loss, has_aux=True), in_axes=(0, 0, 0, 0, 0, None)
        )(agents.theta, agents, pending["obs_n"], obs_n1, action, pool.rnd_target)
        r_fwd = jnp.mean((jax.lax.stop_gradient(out["pred"]) - phi1) ** 2, axis=-1)
        reward = r_fwd + a.w_rnd * rnd_err if a.rnd else r_fwd
        scale = jax.vmap(RewardScale.update, in_axes=(0, 0, 0, None))(agents.reward_scale, reward, term, a.gamma)
        r_s = jax.vmap(RewardScale.scale)(scale, reward)
        target_v = r_s + a.gamma * (1.0 - term) * v1
        delta = target_v - jax.lax.stop_gradient(out["value"])
        pos_t = pending["pos"].astype(jnp.float32) / self.map_size * 2.0 - 1.0

        def total(out):
            loss, parts = jax.vmap(self._head_loss)(out, phi1, action, target_v, delta, r_s, pos_t)
            return loss.sum(), (loss, parts)

        (_, (loss, parts)), cot = jax.value_and_grad(total, has_aux=True)(out)
        (g_out,) = pending["vjp"](cot)
        grad = g_out + g_aux
        theta, m, v, t = jax.vmap(self._update_one)(agents.theta, agents.adam_m, agents.adam_v, agents.adam_t, grad)

        loss = loss + aux
        broken = ~jnp.isfinite(loss) | ~jnp.isfinite(theta).all(-1) | ~jnp.isfinite(v1)
        keep = lambda new, old: jnp.where(broken.reshape((-1,) + (1,) * (new.ndim - 1)), old, new)  # noqa: E731
        agents = agents.replace(
            theta=keep(theta, agents.theta), adam_m=keep(m, agents.adam_m), adam_v=keep(v, agents.adam_v),
            adam_t=t, reward_scale=scale, reward=reward,
        )
        metrics = {
            "intrinsic_reward": reward, "td_error": delta, "loss_inverse": inv_ce, "value": out["value"],
            "gate_open": jnp.abs(jnp.tanh(self.gates(agents))).sum(axis=(1, 2)) / jnp.maximum(
                2 * agents.genome.active.sum(-1), 1),
            **parts,
        }
        if a.rnd:
            metrics["rnd_error"] = rnd_err
        metrics = {k: jnp.where(broken, jnp.nan, x).astype(jnp.float32) for k, x in metrics.items()}
        return agents, broken, metrics

    def gates(self, agents: AgentState):
        """[N, L, 2] current gate alphas."""
        return jax.vmap(lambda th: self.unravel(th)["gates"])(agents.theta)

    # ------------------------------------------------------------------ births and records

    def turnover(self, agents: AgentState, pool, ended, key):
        """Refill every slot whose life ended with a newborn drawn from the pool."""
        died = ended["cause"] != 0
        order = jnp.nonzero(died, size=self.n, fill_value=0)[0]

        def birth(i, agents):
            slot = order[i]
            child = self.newborn(pool, jax.random.fold_in(key, slot))
            return jax.tree.map(lambda s, c: s.at[slot].set(c), agents, child)

        # A loop over the deaths only: a birth costs one agent's gather, not the whole population's.
        agents = jax.lax.fori_loop(0, died.sum(), birth, agents)
        return agents, pool, jnp.full((self.n, 2), -1, jnp.int32)

    def genome(self, agents: AgentState) -> dict:
        g = agents.genome
        return {"encoder_id": g.enc_id, "layer_id": g.layer_id, "head_id": g.head_id,
                "gates_birth": g.gates, "gates": self.gates(agents)}

    def describe_life(self, rec: dict) -> dict:
        """JSON genome of one finished life from its record (numpy, no slot axis)."""
        on = np.asarray(rec["layer_id"]) >= 0
        return {"genome": {
            "encoder": int(rec["encoder_id"]),
            "layers": np.asarray(rec["layer_id"])[on].tolist(),
            "head": int(rec["head_id"]),
            "gates_birth": np.round(np.asarray(rec["gates_birth"])[on], 4).tolist(),
            "gates_death": np.round(np.asarray(rec["gates"])[on], 4).tolist(),
        }}

    def bytes_per_slot(self, agents: AgentState) -> int:
        return sum(x.nbytes for x in jax.tree.leaves(agents)) // self.n

"""The `transformer` agent kind: assembled from the gene pool, learning online from curiosity.

Per step and agent (all vmapped over slots, one update per agent per step):
  act    normalise obs_t, forward the step's tokens over the KV cache with a VJP kept
         open, sample a_t, write the step's keys/values into the cache
  learn  after the world step: value of s_{t+1} (no gradient), intrinsic reward
         r_t = error of the latent next-state prediction (target: the inherited
         encoder's latent of the raw s_{t+1}, fixed during life; predicted as a change
         from the same latent of s_t) (+ optional RND novelty),
         scaled by the running std of the intrinsic return; one Adam step on
         actor-critic TD(0) + forward-model + inverse-dynamics + reward + position
         losses, with a clipped gradient and a norm-bounded update. Non-finite
         losses or weights mark the agent `broken` (the loop kills it).
The trainable vector of an agent is flat ([P] per slot): low-rank deltas on the
inherited genes plus gates (learn=lowrank), or all weights plus gates (learn=full).

Lifecycle (`turnover`, after every step):
  deaths   lifetime fitness -> credit to the genes carried; the carrier's perturbation
           (lamarckian: its lifetime learning; darwinian: its birth mutation) enters the
           genes' evolution-strategies accumulators, weighted by its rank among recent
           lives; its heritable genome joins the recent lives (tournament candidates).
           Broken agents do none of this: they never write into the pool.
  births   parents by tournament among living and recently dead agents, one-point
           crossover, mutation, repair of references to discarded genes; a few
           immigrants drawn from the pool by frequency (evolve=false: all uniform)
  growth   development: a layer gene inserted at a random position with closed gates
  pool     every genepool.update_every steps: improve, discard, split, frequencies
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
from evodevo.agents import development
from evodevo.genepool import dynamics
from evodevo.genepool import genome as gn
from evodevo.genepool import pool as gp
from evodevo.genepool import report
from evodevo.genepool.fitness import credit_fitness, lifetime_fitness
from evodevo.genepool.genome import Genome


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
    loss_first: jax.Array  # [] mean forward loss over the first plateau_window steps of life
    loss_ema: jax.Array  # [] running average of the forward loss (development, learning progress)
    loss_ref: jax.Array  # [] loss_ema at the last plateau check
    birth_layer_id: jax.Array  # [L] int32 layer gene ids at birth (the genome changes with development)
    birth_gates: jax.Array  # [L, 2] gate alphas at birth


class TransformerAgents:
    def __init__(self, cfg: Config, world):
        self.cfg = cfg
        self.a = cfg.agents
        self.g = cfg.genepool
        self.n = world.n
        self.world = world
        self.dm = tf.Dims.make(cfg.agents, world)
        key = jax.random.PRNGKey(0)
        self.layouts = {k: gp.GeneLayout.of(f(key, self.dm)) for k, f in tf.GENE_INIT.items()}
        self.map_size = jnp.asarray(world.map_size(), jnp.float32)
        example = self._trainable_init(jax.random.PRNGKey(0), self._example_base(), jnp.zeros((self.dm.l_max, 2)))
        flat, self.unravel = ravel_pytree(example)
        self.n_params = flat.shape[0]
        # Position of each gate alpha in the flat trainable vector: [L, 2].
        marks = jax.tree.map(jnp.zeros_like, example)
        marks["gates"] = jnp.arange(1, 2 * self.dm.l_max + 1, dtype=jnp.float32).reshape(self.dm.l_max, 2)
        flat_marks = np.asarray(ravel_pytree(marks)[0])
        self.gate_index = jnp.asarray(
            [np.flatnonzero(flat_marks == k)[0] for k in range(1, 2 * self.dm.l_max + 1)], jnp.int32
        ).reshape(self.dm.l_max, 2)

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
        g = self.g
        caps = {"encoder": g.encoder_genes, "layer": g.layer_genes, "head": g.head_genes}
        founders = {k: max(1, int(round(c * g.init_fill))) for k, c in caps.items()}
        inits = {k: (lambda key, f=f, k=k: self.layouts[k].ravel(f(key, self.dm))) for k, f in tf.GENE_INIT.items()}
        k1, k2 = jax.random.split(kr)
        rnd_target = {"w1": tf._dense(k1, self.world.obs_dim, 64), "w2": tf._dense(k2, 64, self.dm.rnd_dim)}
        recent = gn.RecentLives.zeros(g.recent_dead, self.dm.l_max)
        pool = gp.init_pool(kp, caps, founders, inits, rnd_target, g.sigma_init, recent)
        agents = jax.vmap(lambda k: self.newborn(pool, k, self.fresh_genome(pool, k, by_freq=False)))(
            jax.random.split(ka, self.n))
        return agents, pool

    def fresh_genome(self, pool: gp.GenePool, key, by_freq: bool) -> Genome:
        """A genome of init_depth layers drawn from the pool (by frequency, or uniformly)."""
        return gn.sample_genome(jax.random.fold_in(key, 1), pool, self.a.init_depth, self.dm.l_max,
                                self.a.init_gate, by_freq)

    def newborn(self, pool: gp.GenePool, key, genome: Genome) -> AgentState:
        """One agent (no slot axis): genome -> weights gathered from the pool (plus, for darwinian
        carriers, their mutation of each gene), fresh learner state."""
        flat = {
            "encoder": gp.gather(pool.encoder, genome.enc_slot),
            "layers": gp.gather(pool.layer, genome.layer_slot),
            "head": gp.gather(pool.head, genome.head_slot),
        }
        if self.g.improve == "darwinian":
            flat = jax.tree.map(jnp.add, flat, self.mutations(pool, genome))
        base = self.unflatten(flat)
        theta, _ = ravel_pytree(self._trainable_init(key, base, genome.gates))
        dm = self.dm
        c = dm.t * dm.s
        return AgentState(
            genome=genome, base=base, theta=theta, adam_m=jnp.zeros_like(theta), adam_v=jnp.zeros_like(theta),
            adam_t=jnp.int32(0), obs_stats=Welford.zeros((self.world.obs_dim,)), reward_scale=RewardScale.zeros(),
            cache_k=jnp.zeros((dm.l_max, c, dm.d)), cache_v=jnp.zeros((dm.l_max, c, dm.d)),
            cache_step=jnp.full((c,), -1, jnp.int32), mem=jnp.zeros((dm.m, dm.d)), reward=jnp.zeros(()),
            loss_first=jnp.zeros(()), loss_ema=jnp.zeros(()), loss_ref=jnp.full((), jnp.inf, jnp.float32),
            birth_layer_id=genome.layer_id, birth_gates=genome.gates,
        )

    def unflatten(self, flat: dict) -> dict:
        """Flat genes {"encoder": [P], "layers": [L, P], "head": [P]} -> named tensors (`base`)."""
        return {"encoder": self.layouts["encoder"].unravel(flat["encoder"]),
                "layers": jax.vmap(self.layouts["layer"].unravel)(flat["layers"]),
                "head": self.layouts["head"].unravel(flat["head"])}

    def flatten(self, genes: dict) -> dict:
        """Inverse of `unflatten`."""
        return {"encoder": self.layouts["encoder"].ravel(genes["encoder"]),
                "layers": jax.vmap(self.layouts["layer"].ravel)(genes["layers"]),
                "head": self.layouts["head"].ravel(genes["head"])}

    def mutations(self, pool: gp.GenePool, genome: Genome) -> dict:
        """A darwinian carrier's perturbation of each gene it carries (zero where it has none), as flat
        genes. Regenerated from (gene id, copy index), so nothing is stored per agent."""
        def one(kind, slot, gene_id, index):
            bank = pool.bank(kind)
            eps = gp.perturbation(bank.params[slot], gp.noise_key(pool, gene_id, index), bank.sigma[slot],
                                  self.layouts[kind])
            return jnp.where(index >= 0, gp.noise_sign(index), 0.0) * eps

        return {
            "encoder": one("encoder", genome.enc_slot, genome.enc_id, genome.noise_enc),
            "layers": jax.vmap(lambda s, i, k: one("layer", s, i, k))(
                genome.layer_slot, genome.layer_id, genome.noise_layer),
            "head": one("head", genome.head_slot, genome.head_id, genome.noise_head),
        }

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

    def _act_one(self, theta, agent: AgentState, obs_n, prev_action, age, pos, key, phi_now):
        cache = (agent.cache_k, agent.cache_v, agent.cache_step)
        x, k_new, v_new, phi, (enc, head) = self.forward(theta, agent, obs_n, prev_action, age, pos, agent.mem, cache)
        x_act = x[self.dm.action_index]
        logits, _ = tf.policy_value(head, x_act)
        action = jax.random.categorical(key, jax.lax.stop_gradient(logits)).astype(jnp.int32)
        out = tf.heads(head, x_act, action, phi_now)
        mem_out = jax.lax.stop_gradient(x[1 + self.dm.k:])
        aux = (action, jax.lax.stop_gradient(k_new), jax.lax.stop_gradient(v_new), mem_out)
        return out, aux

    def act(self, agents: AgentState, pool, obs, ctx, key):
        obs_stats = jax.vmap(Welford.update)(agents.obs_stats, obs)
        obs_n = jax.vmap(normalize, in_axes=(0, 0, None))(obs_stats, obs, self.a.obs_clip)
        keys = jax.random.split(key, self.n)
        age = ctx["age"]
        phi_now = jax.vmap(self._target_latent)(agents, obs)

        def batched(theta):
            return jax.vmap(self._act_one)(theta, agents, obs_n, ctx["prev_action"], age, ctx["pos"], keys, phi_now)

        out, vjp_fn, (action, k_new, v_new, mem_out) = jax.vjp(batched, agents.theta, has_aux=True)
        agents = jax.vmap(self.write_cache)(agents.replace(obs_stats=obs_stats), k_new, v_new, age)
        agents = agents.replace(mem=mem_out)
        pending = {"out": out, "vjp": vjp_fn, "action": action, "obs_n": obs_n, "pos": ctx["pos"], "phi_now": phi_now}
        return action, pending

    # ------------------------------------------------------------------ learn

    def _target_latent(self, agent: AgentState, obs):
        """phi0(s): the latent of a raw observation under the *inherited* encoder. Neither
        within-life learning nor the running observation statistics move it, so the
        prediction error (the curiosity signal) is stationary: it falls where the agent has
        learned how the world goes."""
        return tf.encode_obs(tf.Eff(agent.base["encoder"], None), obs, self.dm)

    def _next_value(self, theta, agent: AgentState, obs_n1, obs1, action, age1, pos1):
        """V(s_{t+1}) (no gradient) and phi0(s_{t+1})."""
        cache = (agent.cache_k, agent.cache_v, agent.cache_step)
        x, *_, (enc, head) = self.forward(theta, agent, obs_n1, action, age1, pos1, agent.mem, cache)
        _, v1 = tf.policy_value(head, x[self.dm.action_index])
        return v1, self._target_latent(agent, obs1)

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

    def _head_loss(self, out, d_phi, action, target_v, delta, r_s, pos_t):
        """Loss as a function of the act-step outputs (its gradient is the VJP cotangent)."""
        a = self.a
        logp = jax.nn.log_softmax(out["logits"])
        entropy = -(jnp.exp(logp) * logp).sum()
        policy = -jax.lax.stop_gradient(delta) * logp[action] - a.entropy * entropy
        value = 0.5 * (jax.lax.stop_gradient(target_v) - out["value"]) ** 2
        fwd = jnp.mean((out["pred"] - d_phi) ** 2)
        rew = (out["reward"] - r_s) ** 2
        pos = jnp.sum((out["pos"] - pos_t) ** 2)
        total = policy + a.w_value * value + a.w_forward * fwd + a.w_reward * rew + a.w_position * pos
        return total, {"loss_forward": fwd, "loss_value": value, "entropy": entropy, "loss_position": pos}

    def _update_one(self, theta, m, v, t, grad, developmental):
        a = self.a
        gnorm = jnp.linalg.norm(grad)
        grad = grad * jnp.minimum(1.0, a.grad_clip / (gnorm + 1e-12))
        t = t + 1
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        mhat = m / (1 - 0.9**t)
        vhat = v / (1 - 0.999**t)
        step = a.lr * mhat / (jnp.sqrt(vhat) + 1e-8)
        # Gates of layers grown in during life learn faster (they start closed).
        gate_lr = jnp.where(developmental[:, None], a.dev_gate_lr, 1.0)
        step = step.at[self.gate_index].multiply(gate_lr)
        step = step * jnp.minimum(1.0, a.max_update / (jnp.linalg.norm(step) + 1e-12))
        return theta - step, m, v, t

    def learn(self, agents: AgentState, pool, pending, obs, ctx, terminal, key):
        a = self.a
        term = terminal.astype(jnp.float32)
        obs_n1 = jax.vmap(normalize, in_axes=(0, 0, None))(agents.obs_stats, obs, a.obs_clip)
        action = pending["action"]
        v1, phi1 = jax.vmap(self._next_value)(agents.theta, agents, obs_n1, obs, action, ctx["age"], ctx["pos"])
        v1, phi1 = jax.lax.stop_gradient((v1, phi1))
        # The forward model predicts the change phi0(s_{t+1}) - phi0(s_t) (a skip from the
        # current target latent): what stays the same costs nothing to predict, so the error
        # measures what the agent has not learned about how its action changes the world.
        d_phi = phi1 - pending["phi_now"]
        out = pending["out"]

        (aux, (inv_ce, rnd_err)), g_aux = jax.vmap(
            jax.value_and_grad(self._aux_loss, has_aux=True), in_axes=(0, 0, 0, 0, 0, None)
        )(agents.theta, agents, pending["obs_n"], obs_n1, action, pool.rnd_target)
        r_fwd = jnp.mean((jax.lax.stop_gradient(out["pred"]) - d_phi) ** 2, axis=-1)
        reward = r_fwd + a.w_rnd * rnd_err if a.rnd else r_fwd
        scale = jax.vmap(RewardScale.update, in_axes=(0, 0, 0, None))(agents.reward_scale, reward, term, a.gamma)
        r_s = jax.vmap(RewardScale.scale)(scale, reward)
        target_v = r_s + a.gamma * (1.0 - term) * v1
        delta = target_v - jax.lax.stop_gradient(out["value"])
        pos_t = pending["pos"].astype(jnp.float32) / self.map_size * 2.0 - 1.0

        def total(out):
            loss, parts = jax.vmap(self._head_loss)(out, d_phi, action, target_v, delta, r_s, pos_t)
            return loss.sum(), (loss, parts)

        (_, (loss, parts)), cot = jax.value_and_grad(total, has_aux=True)(out)
        (g_out,) = pending["vjp"](cot)
        grad = g_out + g_aux
        theta, m, v, t = jax.vmap(self._update_one)(
            agents.theta, agents.adam_m, agents.adam_v, agents.adam_t, grad, agents.genome.developmental)

        loss = loss + aux
        broken = ~jnp.isfinite(loss) | ~jnp.isfinite(theta).all(-1) | ~jnp.isfinite(v1)
        keep = lambda new, old: jnp.where(broken.reshape((-1,) + (1,) * (new.ndim - 1)), old, new)  # noqa: E731
        agents = agents.replace(
            theta=keep(theta, agents.theta), adam_m=keep(m, agents.adam_m), adam_v=keep(v, agents.adam_v),
            adam_t=t, reward_scale=scale, reward=reward, **self._track_loss(agents, parts["loss_forward"], ctx["age"]),
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

    def _track_loss(self, agents: AgentState, loss, age) -> dict:
        """Running averages of the forward loss: over the first plateau_window steps of life (fixed
        after that) and a recent one (an EMA over ~plateau_window / 4 steps)."""
        n = jnp.maximum(age, 1).astype(jnp.float32)  # the first update of a life comes at age 1
        w = self.a.plateau_window
        first = jnp.where(n <= w, agents.loss_first + (loss - agents.loss_first) / n, agents.loss_first)
        rate = jnp.maximum(1.0 / n, 4.0 / w)
        return {"loss_first": first, "loss_ema": agents.loss_ema + rate * (loss - agents.loss_ema)}

    def gates(self, agents: AgentState):
        """[N, L, 2] current gate alphas."""
        return agents.theta[:, self.gate_index]

    # ------------------------------------------------------------------ births and records

    def fitness(self, agents: AgentState, pool: gp.GenePool, ages, achievements):
        """[N] lifetime fitness of every slot's life at age `ages` (final for the dying)."""
        progress = jnp.clip((agents.loss_first - agents.loss_ema) / (agents.loss_first + 1e-8), -1.0, 1.0)
        return lifetime_fitness(self.g, ages, pool, progress, achievements.sum(-1))

    def perturbation(self, agent: AgentState, pool: gp.GenePool) -> dict:
        """What one dying carrier contributes to each of its genes' ES step, as flat genes:
        lamarckian, its lifetime learning (end-of-life minus inherited weights); darwinian, its mutation."""
        if self.g.improve == "darwinian":
            return self.mutations(pool, agent.genome)
        tr = self.unravel(agent.theta)
        if self.a.learn == "full":
            return self.flatten(jax.tree.map(jnp.subtract, tr["params"], agent.base))
        return self.flatten(jax.tree.map(lambda d: d[0] @ d[1] if isinstance(d, tuple) else d, tr["delta"],
                                         is_leaf=lambda x: isinstance(x, tuple)))

    def record_death(self, pool: gp.GenePool, agent: AgentState, gates_now, fitness, lifespan, agent_id):
        """One finished (not broken) life: credit, ES contribution, and a place among the recent lives."""
        g = agent.genome
        pool = credit_fitness(pool, g, fitness, lifespan)
        if self.g.evolve and self.g.improve != "frozen":
            u = 2.0 * pool.recent.quantile(fitness) - 1.0  # centred rank among recent lives, in [-1, 1]
            if self.g.improve == "lamarckian":  # move toward what the fitter half learned
                w = jnp.maximum(u, 0.0)
                w_enc, w_layers, w_head = w, w * g.active, w
            else:  # antithetic ES over the birth mutations (founders and immigrants carry none)
                w_enc, w_layers, w_head = u * (g.noise_enc >= 0), u * (g.noise_layer >= 0), u * (g.noise_head >= 0)
            d = self.perturbation(agent, pool)
            pool = pool.replace(
                encoder=gp.accumulate(pool.encoder, g.enc_slot[None], d["encoder"][None], w_enc[None]),
                layer=gp.accumulate(pool.layer, g.layer_slot, d["layers"], w_layers),
                head=gp.accumulate(pool.head, g.head_slot[None], d["head"][None], w_head[None]),
            )
        return pool.replace(recent=pool.recent.push(self.heritable(g, gates_now), fitness, agent_id))

    def heritable(self, genome: Genome, gates_now) -> Genome:
        """What a parent with these current gate alphas passes on (see genome.heritable)."""
        return gn.heritable(genome, gates_now, self.g.improve == "lamarckian", self.a.assimilate_at)

    def reproduce(self, agents: AgentState, pool: gp.GenePool, living, fitness, agent_ids, gates_now, key):
        """A newborn's genome and its parents' agent ids ([2], -1 where none)."""
        ks = jax.random.split(key, 7)
        none = jnp.full(2, -1, jnp.int32)
        if not self.g.evolve:
            return self.fresh_genome(pool, ks[0], by_freq=False), none
        n = self.n
        cand = jnp.concatenate([living, pool.recent.valid]).astype(jnp.float32)
        fit = jnp.concatenate([fitness, pool.recent.fitness])
        ids = jnp.concatenate([agent_ids, pool.recent.agent_id])
        p = jnp.where(cand.sum() > 0, cand, 1.0)

        def tournament(k):
            idx = jax.random.choice(k, cand.shape[0], (self.g.tournament,), p=p / p.sum())
            return idx[jnp.argmax(fit[idx])]

        def parent(i):
            j = jnp.minimum(i, n - 1)
            living_genome = self.heritable(jax.tree.map(lambda x: x[j], agents.genome), gates_now[j])
            dead = jax.tree.map(lambda x: x[jnp.maximum(i - n, 0)], pool.recent.genome)
            return _where(i < n, living_genome, dead)

        i1, i2 = tournament(ks[1]), tournament(ks[2])
        cross = jax.random.bernoulli(ks[3], self.g.crossover)
        p1 = parent(i1)
        child = _where(cross, gn.crossover(ks[4], p1, parent(i2)), p1)
        child = gn.mutate(ks[5], gn.repair(ks[6], child, pool), pool, self.g)
        immigrant = jax.random.bernoulli(ks[0], self.g.immigrants) | (cand.sum() == 0)
        genome = _where(immigrant, self.fresh_genome(pool, ks[0], by_freq=True), child)
        parents = jnp.where(immigrant, none, jnp.stack([ids[i1], jnp.where(cross, ids[i2], -1)]))
        return genome, parents

    def assign_mutations(self, pool: gp.GenePool, genome: Genome):
        """Darwinian: the newborn takes the next mutated-copy index of each gene it carries (copies
        2j and 2j+1 of a gene are an antithetic pair)."""
        def take(bank, slot, on):
            index = jnp.where(on, bank.births[slot], -1)
            return bank.replace(births=bank.births.at[slot].add(jnp.asarray(on, jnp.int32))), index

        enc, i_enc = take(pool.encoder, genome.enc_slot, True)
        head, i_head = take(pool.head, genome.head_slot, True)
        layer, i_layers = pool.layer, []
        for i in range(self.dm.l_max):
            layer, index = take(layer, genome.layer_slot[i], genome.active[i])
            i_layers.append(index)
        genome = genome.replace(noise_enc=i_enc, noise_layer=jnp.stack(i_layers), noise_head=i_head)
        return pool.replace(encoder=enc, layer=layer, head=head), genome

    def carriers(self, agents: AgentState, pool: gp.GenePool) -> dict:
        """{kind: [G] int32} living agents carrying each gene (a gene twice in a genome counts once)."""
        g = agents.genome
        ones = jnp.ones((self.n, 1), bool)
        return {"encoder": gp.carriers(pool.encoder.capacity, g.enc_slot[:, None], ones),
                "layer": gp.carriers(pool.layer.capacity, g.layer_slot, g.active),
                "head": gp.carriers(pool.head.capacity, g.head_slot[:, None], ones)}

    def turnover(self, agents: AgentState, pool: gp.GenePool, ended, key):
        """Deaths, births, development and (every update_every steps) the pool's dynamics."""
        k_birth, k_dev, k_pool = jax.random.split(key, 3)
        died = ended["cause"] != 0
        ages = ended["lifespan"]
        fitness = self.fitness(agents, pool, ages, ended["achievements"])
        gates_now = self.gates(agents)

        credited = died & ~ended["broken"]  # a broken agent never writes into the pool
        order = jnp.nonzero(credited, size=self.n, fill_value=0)[0]

        def death(i, pool):
            s = order[i]
            agent = jax.tree.map(lambda x: x[s], agents)
            return self.record_death(pool, agent, gates_now[s], fitness[s], ages[s], ended["agent_id"][s])

        pool = jax.lax.fori_loop(0, credited.sum(), death, pool)

        # Births: a loop over the deaths only, so a birth costs one agent's gather, not the population's.
        order = jnp.nonzero(died, size=self.n, fill_value=0)[0]

        def birth(i, carry):
            agents, pool, parents = carry
            slot = order[i]
            k = jax.random.fold_in(k_birth, slot)
            genome, par = self.reproduce(agents, pool, ~died, fitness, ended["agent_id"], gates_now, k)
            if self.g.improve == "darwinian" and self.g.evolve:
                pool, genome = self.assign_mutations(pool, genome)
            child = self.newborn(pool, jax.random.fold_in(k, 1), genome)
            agents = jax.tree.map(lambda s, c: s.at[slot].set(c), agents, child)
            return agents, pool, parents.at[slot].set(par)

        parents = jnp.full((self.n, 2), -1, jnp.int32)
        agents, pool, parents = jax.lax.fori_loop(0, died.sum(), birth, (agents, pool, parents))

        agents = development.develop(self, agents, pool, jnp.where(died, 0, ages), k_dev)

        if self.g.evolve:
            pool = jax.lax.cond(
                ended["step"] % self.g.update_every == 0,
                lambda p: dynamics.update_pool(p, self.carriers(agents, p), ended["step"], k_pool, self.g,
                                               self.layouts),
                lambda p: p, pool,
            )
        return agents, pool, {"parents": parents, "fitness": fitness}

    def genome(self, agents: AgentState) -> dict:
        g = agents.genome
        return {"encoder_id": g.enc_id, "layer_id": g.layer_id, "head_id": g.head_id,
                "developmental": g.developmental, "gates": self.gates(agents),
                "layer_id_birth": agents.birth_layer_id, "gates_birth": agents.birth_gates}

    def describe_life(self, rec: dict) -> dict:
        """JSON genome (at birth and at death) and fitness of one finished life (numpy, no slot axis)."""
        on = np.asarray(rec["layer_id"]) >= 0
        born = np.asarray(rec["layer_id_birth"]) >= 0
        out = {"genome": {
            "encoder": int(rec["encoder_id"]),
            "head": int(rec["head_id"]),
            "layers_birth": np.asarray(rec["layer_id_birth"])[born].tolist(),
            "gates_birth": np.round(np.asarray(rec["gates_birth"], np.float64)[born], 4).tolist(),
            "layers": np.asarray(rec["layer_id"])[on].tolist(),
            "gates_death": np.round(np.asarray(rec["gates"], np.float64)[on], 4).tolist(),
            "developmental": np.asarray(rec["developmental"])[on].tolist(),
        }}
        if "fitness" in rec:
            out["fitness"] = round(float(rec["fitness"]), 5)
        return out

    def pool_report(self, agents: AgentState, pool: gp.GenePool) -> dict:
        """Host copies of the pool's statistics and the genomes' shapes (see genepool.report)."""
        return jax.device_get(report.pool_view(self, agents, pool))

    def pool_summary(self, pool: gp.GenePool, agents: AgentState, step: int) -> dict:
        """What the viewer's pool panel shows."""
        return report.summary(self.pool_report(agents, pool), step)

    def bytes_per_slot(self, agents: AgentState) -> int:
        return sum(x.nbytes for x in jax.tree.leaves(agents)) // self.n


def _where(c, a, b):
    """`a` where the scalar `c`, else `b`, leaf by leaf (pytrees of the same structure)."""
    return jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)

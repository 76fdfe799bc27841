"""The transformer agent's function: genes' weights -> tokens -> gated layers -> heads.

Three gene kinds, each a flat dict of arrays (one pool bank per kind):
  encoder  observation -> observation token; also the previous-action, time and place
           projections, the thinking tokens and the memory embeddings (and the memory's
           write and the debrief's embedding, where they are on: `memory`, `debrief`)
  layer    one pre-LN transformer block (attention + MLP)
  head     final LayerNorm and every output head

Weights are read through `Eff`, which adds the agent's within-life delta to the
inherited gene: a low-rank product for matrices (computed as (x @ A) @ B, never
materialised) or a dense delta for vectors. With learn=full the delta is absent
and the trainable vector holds the weights themselves.

Tokens of one step: [obs, think_1..K, mem_1..M]. The action is read at the last
thinking token (the obs token when K = 0). With agents.debrief the first thinking
token's input holds the last step's outcome (`debrief`), which the tokens after it
read. Attention covers the current step (causal) and a KV cache of the last T steps,
with an ALiBi bias on the step distance; the cache and the memory carried between
steps are stop-gradient (a learned memory's write gets its gradient from carried
sensitivities, `memory`).
With agents.memory=learned or evolved (`Dims.read_memory`) every token of a step also attends to
the step's memory tokens: the memory is read before the action is chosen (causally
they come after it, and would be read only a step later, through the cache), and the
memory tokens' outputs, which the write reads, see the whole step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from evodevo.config import AgentsConfig

LORA_MIN_DIM = 8  # matrices with both sides >= this get a low-rank delta; others a dense one


@dataclass(frozen=True)
class Dims:
    """Static shapes of an agent, derived from the config and the world."""

    d: int
    heads: int
    mlp: int
    l_max: int
    k: int  # thinking tokens
    m: int  # memory tokens
    t: int  # context steps
    cells: int
    channels: int
    rest: int
    cell_embed: int
    actions: int
    time_dim: int
    place_dim: int
    body_dim: int = 10  # interoception: health, food, drink, energy, sleeping and the change of each
    read_memory: bool = False  # every token of a step attends to the step's memory tokens (memory learned, evolved)
    rnd_dim: int = 32

    @property
    def s(self) -> int:
        """Tokens per step."""
        return 1 + self.k + self.m

    @property
    def action_index(self) -> int:
        return self.k

    @classmethod
    def make(cls, cfg: AgentsConfig, world) -> "Dims":
        rows, cols, channels = world.spec.map_obs_shape
        cells = rows * cols
        return cls(
            d=cfg.d_model, heads=cfg.n_heads, mlp=cfg.mlp_ratio * cfg.d_model, l_max=cfg.l_max,
            k=cfg.think_tokens, m=cfg.memory_tokens, t=cfg.context, cells=cells, channels=channels,
            rest=world.obs_dim - cells * channels, cell_embed=cfg.cell_embed, actions=world.num_actions,
            time_dim=2 * cfg.time_scales, place_dim=2 * 3 * cfg.place_scales, read_memory=cfg.memory != "frozen",
        )


# --------------------------------------------------------------------------- gene init


def _dense(key, fan_in, fan_out, scale=1.0):
    return jax.random.normal(key, (fan_in, fan_out)) * (scale / math.sqrt(fan_in))


def init_encoder(key, dm: Dims) -> dict:
    k = jax.random.split(key, 8)
    d = dm.d
    return {
        "w_cell": _dense(k[0], dm.channels, dm.cell_embed),
        "w_map": _dense(k[1], dm.cells * dm.cell_embed, d),
        "w_rest": _dense(k[2], dm.rest, d),
        "b_obs": jnp.zeros(d),
        "act_emb": jax.random.normal(k[3], (dm.actions + 1, d)) * 0.1,  # row 0: no previous action
        "w_time": _dense(k[4], dm.time_dim, d, 0.3),
        "w_place": _dense(k[5], dm.place_dim, d, 0.3),
        "w_body": _dense(jax.random.fold_in(k[5], 1), dm.body_dim, d, 0.3),
        "think": jax.random.normal(k[6], (dm.k, d)) * 0.3,
        "mem_emb": jax.random.normal(k[7], (dm.m, d)) * 0.3,
    }


def init_layer(key, dm: Dims) -> dict:
    k = jax.random.split(key, 6)
    d = dm.d
    return {
        "ln1_s": jnp.ones(d), "ln1_b": jnp.zeros(d),
        "wq": _dense(k[0], d, d), "wk": _dense(k[1], d, d), "wv": _dense(k[2], d, d),
        "wo": _dense(k[3], d, d, 0.5),
        "ln2_s": jnp.ones(d), "ln2_b": jnp.zeros(d),
        "w1": _dense(k[4], d, dm.mlp), "b1": jnp.zeros(dm.mlp),
        "w2": _dense(k[5], dm.mlp, d, 0.5), "b2": jnp.zeros(d),
    }


def init_head(key, dm: Dims) -> dict:
    k = jax.random.split(key, 10)
    d = dm.d
    return {
        "lnf_s": jnp.ones(d), "lnf_b": jnp.zeros(d),
        "w_pi": _dense(k[0], d, dm.actions, 0.1), "b_pi": jnp.zeros(dm.actions),
        "w_v": _dense(k[1], d, 1, 0.1), "b_v": jnp.zeros(1),
        "w_pos": _dense(k[2], d, 2, 0.1), "b_pos": jnp.zeros(2),
        "w_f1": _dense(k[3], d, d), "f_act": jax.random.normal(k[4], (dm.actions, d)) * 0.3, "b_f1": jnp.zeros(d),
        "w_fs": _dense(jax.random.fold_in(k[3], 1), d, d),
        "w_f2": _dense(k[5], d, d, 0.1), "b_f2": jnp.zeros(d),  # small: a newborn predicts "no change"
        "w_r": _dense(k[6], d, 1, 0.1), "b_r": jnp.zeros(1),
        "w_i1": _dense(k[7], 2 * d, d), "b_i1": jnp.zeros(d),
        "w_i2": _dense(k[8], d, dm.actions, 0.1), "b_i2": jnp.zeros(dm.actions),
        "w_rnd1": _dense(k[9], d, d), "b_rnd1": jnp.zeros(d),
        "w_rnd2": _dense(jax.random.fold_in(k[9], 1), d, dm.rnd_dim), "b_rnd2": jnp.zeros(dm.rnd_dim),
    }


GENE_INIT = {"encoder": init_encoder, "layer": init_layer, "head": init_head}


# --------------------------------------------------------------------------- weights


def lora_shaped(x) -> bool:
    return x.ndim == 2 and min(x.shape) >= LORA_MIN_DIM


def init_delta(key, gene: dict, rank: int, dense: tuple = ()) -> dict:
    """Zero-effect within-life delta for one gene: (A random, B = 0) for matrices, or zeros (vectors,
    small matrices and the tensors named in `dense`, which learn in full rank)."""
    out = {}
    for i, (name, w) in enumerate(sorted(gene.items())):
        if lora_shaped(w) and name not in dense:
            a = jax.random.normal(jax.random.fold_in(key, i), (w.shape[0], rank)) / math.sqrt(w.shape[0])
            out[name] = (a, jnp.zeros((rank, w.shape[1])))
        else:
            out[name] = jnp.zeros_like(w)
    return out


@jax.tree_util.register_pytree_node_class
class Eff:
    """Effective weights of one gene: inherited `base` plus the within-life `delta` (a pytree: it crosses jit)."""

    def __init__(self, base: dict, delta: dict | None):
        self.base, self.delta = base, delta

    def tree_flatten(self):
        return (self.base, self.delta), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    def mm(self, x, name):
        w = self.base[name]  # float32, or bfloat16 (agents.weights_dtype): then accumulated in float32
        y = x @ w if w.dtype == jnp.float32 else jnp.matmul(x.astype(w.dtype), w, preferred_element_type=jnp.float32)
        if self.delta is not None:
            d = self.delta[name]
            y = y + ((x @ d[0]) @ d[1] if isinstance(d, tuple) else x @ d)
        return y

    def __getitem__(self, name):
        w = self.base[name]
        if self.delta is None:
            return w
        d = self.delta[name]
        return w + (d[0] @ d[1] if isinstance(d, tuple) else d)


def hold(base: dict, dtype: str) -> dict:
    """One agent's inherited genes as it holds them during life (`agents.weights_dtype`): matrices in
    `dtype`, vectors and the drive gene (a few reward and reflex weights) in float32."""
    if dtype == "float32":
        return base
    cast = lambda w: w.astype(dtype) if w.ndim >= 2 else w  # noqa: E731
    return {k: v if k == "drive" else jax.tree.map(cast, v) for k, v in base.items()}


def unstack_layers(base: dict) -> dict:
    """Genes with stacked layers ([L, ...] leaves) -> the agent's storage: a tuple of L layer dicts.
    Slicing layer i out of a slot-major [N, L, ...] array copies every agent's weights on every
    pass (a strided copy as large as the matmuls' own reads); separate arrays need no copy."""
    n = jax.tree.leaves(base["layer"])[0].shape[0]
    return dict(base, layer=tuple(jax.tree.map(lambda x: x[i], base["layer"]) for i in range(n)))


def stack_layers(base: dict) -> dict:
    """Inverse of `unstack_layers`: the layers as one [L, ...] dict."""
    return dict(base, layer=jax.tree.map(lambda *xs: jnp.stack(xs), *base["layer"]))


# --------------------------------------------------------------------------- senses


def time_code(age, n_scales: int):
    """Multi-scale sinusoidal code of the agent's age: periods 4, 16, 64, ... steps."""
    periods = 4.0 ** jnp.arange(1, n_scales + 1)
    ph = 2 * jnp.pi * jnp.asarray(age, jnp.float32)[..., None] / periods
    return jnp.concatenate([jnp.sin(ph), jnp.cos(ph)], -1)


def place_code(pos, n_scales: int):
    """Grid-cell code: sin/cos of the position projected on 3 directions 60 degrees apart, several scales."""
    ang = jnp.array([0.0, jnp.pi / 3, 2 * jnp.pi / 3])
    dirs = jnp.stack([jnp.cos(ang), jnp.sin(ang)], -1)  # [3, 2]
    scales = 3.0 * 2.0 ** jnp.arange(n_scales)  # 3, 6, 12, 24 cells
    proj = jnp.asarray(pos, jnp.float32) @ dirs.T  # [..., 3]
    ph = 2 * jnp.pi * proj[..., :, None] / scales  # [..., 3, n]
    code = jnp.concatenate([jnp.sin(ph), jnp.cos(ph)], -1)
    return code.reshape(code.shape[:-2] + (-1,))


def layer_norm(x, scale=None, bias=None, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) * jax.lax.rsqrt(var + eps)
    if scale is not None:
        y = y * scale + bias
    return y


# --------------------------------------------------------------------------- forward


def encode_obs(enc: Eff, obs, dm: Dims):
    """phi(s): the latent of an observation (LayerNormed, so it cannot shrink to zero)."""
    cells = obs[..., : dm.cells * dm.channels].reshape(obs.shape[:-1] + (dm.cells, dm.channels))
    e = enc.mm(cells, "w_cell").reshape(obs.shape[:-1] + (dm.cells * dm.cell_embed,))
    h = enc.mm(e, "w_map") + enc.mm(obs[..., dm.cells * dm.channels:], "w_rest") + enc["b_obs"]
    return layer_norm(h)


def step_tokens(enc: Eff, phi, prev_action, age, pos, body, mem_in, dm: Dims, debrief=None):
    """[S, D] input tokens of one step: observation (+ action, time, place, body), thinking, memory.
    `pos` [2] is the position the grid code encodes (`place.estimate`), `body` [body_dim] the
    interoception vector (see `interoception`), `debrief` [D] (or None) the last step's outcome,
    added to the first thinking token (`debrief`)."""
    obs_tok = (
        phi
        + enc["act_emb"][prev_action + 1]
        + enc.mm(time_code(age, dm.time_dim // 2), "w_time")
        + enc.mm(place_code(pos, dm.place_dim // 6), "w_place")
        + enc.mm(body, "w_body")
    )
    think = enc["think"] if debrief is None else enc["think"].at[0].add(debrief)
    return jnp.concatenate([obs_tok[None], think, mem_in + enc["mem_emb"]], 0)


def interoception(body, body_prev):
    """The agent's sense of its own body: its state (health, food, drink, energy in [0, 1], asleep)
    and the change of each since the last step."""
    return jnp.concatenate([body, body - body_prev], -1)


def alibi_slopes(heads: int):
    return 2.0 ** (-8.0 * (jnp.arange(heads) + 1) / heads)


def attention(x_ln, lay: Eff, cache_k, cache_v, key_step, key_pos, q_step, q_pos, dm: Dims):
    """Attention of the new tokens over cache + new tokens. Returns (out, k_new, v_new)."""
    s_new = x_ln.shape[0]
    dh = dm.d // dm.heads
    q = lay.mm(x_ln, "wq").reshape(s_new, dm.heads, dh)
    k_new = lay.mm(x_ln, "wk")
    v_new = lay.mm(x_ln, "wv")
    k = jnp.concatenate([cache_k, k_new], 0).reshape(-1, dm.heads, dh)
    v = jnp.concatenate([cache_v, v_new], 0).reshape(-1, dm.heads, dh)
    dist = q_step[:, None] - key_step[None, :]  # [q, key] in steps
    within = key_pos[None, :] <= q_pos[:, None]  # causal within a step ...
    if dm.read_memory:
        within = within | (key_pos[None, :] > dm.k)  # ... but the step's memory is read by every token
    visible = (key_step[None, :] >= 0) & (dist <= dm.t) & ((dist > 0) | ((dist == 0) & within))
    logits = jnp.einsum("qhd,khd->hqk", q, k) / math.sqrt(dh)
    logits = logits - alibi_slopes(dm.heads)[:, None, None] * dist[None].astype(jnp.float32)
    logits = jnp.where(visible[None], logits, -1e30)
    w = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("hqk,khd->qhd", w, v).reshape(s_new, dm.d)
    return lay.mm(out, "wo"), k_new, v_new


def run_layers(x, layers, gates, active, cache_k, cache_v, cache_step, q_step, dm: Dims):
    """The gated layer stack over new tokens x [S_new, D]; `layers` holds one `Eff` per layer slot.
    Returns (x, k_new [L,S_new,D], v_new)."""
    s = dm.s
    s_new = x.shape[0]
    q_pos = jnp.arange(s_new) % s
    key_step = jnp.concatenate([cache_step, q_step])
    key_pos = jnp.concatenate([jnp.arange(cache_step.shape[0]) % s, q_pos])

    k_all, v_all = [], []
    for i, lay in enumerate(layers):  # unrolled: a scan would transpose every agent's stacked weights each call
        att, k_new, v_new = attention(
            layer_norm(x, lay["ln1_s"], lay["ln1_b"]), lay, cache_k[i], cache_v[i], key_step, key_pos, q_step, q_pos, dm
        )
        y = x + jnp.tanh(gates[i, 0]) * att
        hid = jax.nn.gelu(lay.mm(layer_norm(y, lay["ln2_s"], lay["ln2_b"]), "w1") + lay["b1"])
        y = y + jnp.tanh(gates[i, 1]) * (lay.mm(hid, "w2") + lay["b2"])
        x = jnp.where(active[i], y, x)  # an inactive slot is an exact identity
        # Without a barrier XLA fuses across layers and recomputes: 4 layers cost ~2x more here.
        x = jax.lax.optimization_barrier(x)
        k_all.append(k_new)
        v_all.append(v_new)
    return x, jnp.stack(k_all), jnp.stack(v_all)


def read_out(head: Eff, x_act):
    """The action token's stream, normalised for every head."""
    return layer_norm(x_act, head["lnf_s"], head["lnf_b"])


def policy_value(head: Eff, h):
    """(logits [A], value []) from the normalised action token `h`."""
    return head.mm(h, "w_pi") + head["b_pi"], (head.mm(h, "w_v") + head["b_v"])[..., 0]


def predictions(head: Eff, h, action, phi_now):
    """The other heads, read at the normalised action token `h`. The forward model predicts the
    *change* of the target latent, phi0(s_{t+1}) - phi0(s_t), from the context, the action and
    phi0(s_t) itself (`phi_now`: the inherited encoder's latent of the raw current observation).
    The place head reads the forward model's hidden layer `z` (state and action) and predicts the
    step's displacement pos_{t+1} - pos_t in map cells (path integration, `place`)."""
    z = jax.nn.gelu(head.mm(h, "w_f1") + head.mm(phi_now, "w_fs") + head["f_act"][action] + head["b_f1"])
    return {
        "pos": head.mm(z, "w_pos") + head["b_pos"],
        "pred": head.mm(z, "w_f2") + head["b_f2"],
        "reward": (head.mm(z, "w_r") + head["b_r"])[..., 0],
    }


def inverse_logits(head: Eff, state, state_next):
    """Logits of the action that led from s_t to s_{t+1}, each given as a [D] vector."""
    z = jax.nn.gelu(head.mm(jnp.concatenate([state, state_next], -1), "w_i1") + head["b_i1"])
    return head.mm(z, "w_i2") + head["b_i2"]


def rnd_prediction(head: Eff, phi_next):
    z = jax.nn.gelu(head.mm(phi_next, "w_rnd1") + head["b_rnd1"])
    return head.mm(z, "w_rnd2") + head["b_rnd2"]

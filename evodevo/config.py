"""One typed configuration for a run.

Every field carries a one-line doc and, where values can be impossible, a check. YAML presets in configs/
override the defaults here; `--set section.key=value` overrides a preset. Unknown keys, wrong types and
impossible values raise `ConfigError` naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, get_type_hints

import jax
import yaml
from flax import struct


class ConfigError(ValueError):
    """A bad configuration: the message names the key and what to do."""


def _f(default, doc: str, check: Callable[[Any], bool] | None = None, need: str = "", static: bool = False):
    """A config field. Floats of agents and genepool are traced hyperparameters (`hyperparams`) unless `static`."""
    return field(default=default, metadata={"doc": doc, "check": check, "need": need, "static": static})


_pos, _nonneg, _unit = (lambda x: x > 0), (lambda x: x >= 0), (lambda x: 0.0 <= x <= 1.0)  # value checks
ENVS = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1")
AGENT_KINDS = ("random", "transformer")
DEVELOP = ("plateau", "age", "none")
IMPROVE = ("lamarckian", "darwinian", "frozen")
FITNESS = ("survival", "progress", "achievements")
INVERSE_INPUTS = ("encoder", "layers")
MEMORY = ("frozen", "evolved", "learned")
MEMORY_WRITE = ("outputs", "input", "update")
NESTS, DRIVE_SOURCES = ("spawn", "drink"), ("config", "evolved", "offset")
CONTROLS, FAST_INPUTS = ("learning", "drives", "memory"), ("token", "facing", "senses", "view")


@dataclass(frozen=True)
class WorldConfig:
    env: str = _f(ENVS[0], "Craftax env name (symbolic only)", lambda x: x in ENVS, f"one of {ENVS}")
    n_slots: int = _f(64, "agent slots = Craftax worlds, one agent each", _pos, "> 0")
    max_age: int = _f(10000, "an agent dies of old age at this many steps", _pos, "> 0")
    immortal: bool = _f(False, "benchmark/test switch: nobody dies of health, lava or old age")
    spawn_clear_radius: int = _f(14, "hostile mobs and projectiles this close (Chebyshev) to a newborn are removed (14: Craftax's mob range)", _nonneg, ">= 0")
    nest: str = _f("drink", "where a newborn is born: drink (the free tile nearest the place where its world's player last "
                   "drank, the spawn point until one has: a home moves to its water; default since the survival benchmark "
                   "measured it) or spawn (nearest the world's first spawn point)", lambda x: x in NESTS, f"one of {NESTS}")


@dataclass(frozen=True)
class AgentsConfig:
    kind: str = _f("transformer", "agent kind: transformer (learning) or random (baseline)",
                   lambda x: x in AGENT_KINDS, f"one of {AGENT_KINDS}")
    d_model: int = _f(64, "width of the residual stream", _pos, "> 0")
    n_heads: int = _f(4, "attention heads per layer (must divide d_model)", _pos, "> 0")
    mlp_ratio: int = _f(2, "MLP hidden width = mlp_ratio * d_model", _pos, "> 0")
    l_max: int = _f(4, "layer slots per agent (fixed shape; inactive slots are identities)", _pos, "> 0")
    init_depth: int = _f(2, "active layers in a newborn's genome", _nonneg, ">= 0")
    init_gate: float = _f(1.0, "gate alpha of inherited layers in initial genomes (output scaled by tanh(alpha))")
    think_tokens: int = _f(1, "K learnable thinking tokens per step; the action is read at the last one", _nonneg, ">= 0")
    debrief: bool = _f(False, "the first thinking token's input holds the last step's outcome (forward-model error, the "
                       "body's change, curiosity, the reward), read by the thinking tokens after it (needs think_tokens >= 1)")
    memory_tokens: int = _f(0, "M memory tokens carried from step to step, read before the action is chosen", _nonneg, ">= 0")
    memory: str = _f("frozen", "how the memory is written: frozen (the memory tokens' outputs, untrained), learned (diagonal "
                     "linear recurrent units, their write learned online by carried sensitivities) or evolved (learned's "
                     "units, their write inherited and evolved, never learned in life: learned's control)",
                     lambda x: x in MEMORY, f"one of {MEMORY}")
    memory_write: str = _f("outputs", "what the memory writes: outputs (the memory tokens' outputs), update (those less their "
                           "inputs: bounded) or input (learned, evolved: the observation token)", lambda x: x in MEMORY_WRITE, f"one of {MEMORY_WRITE}")
    recall: int = _f(0, "a job for the memory: a head on the memory tokens' outputs predicts the latent of the "
                     "observation this many steps ago (longer ago than agents.context reaches); 0: none "
                     "(needs memory_tokens >= 1)", _nonneg, ">= 0", static=True)
    w_recall: float = _f(1.0, "loss weight: recall (agents.recall)", _nonneg, ">= 0")
    context: int = _f(8, "T: steps of KV cache per layer (short-term memory)", _pos, "> 0")
    cell_embed: int = _f(8, "per-map-cell embedding width of the factorised observation encoder", _pos, "> 0")
    time_scales: int = _f(6, "sinusoid periods of the sense of time (age), 4**k steps", _pos, "> 0")
    place_scales: int = _f(4, "grid-cell scales of the sense of place (x 3 orientations)", _pos, "> 0")
    place_input: bool = _f(True, "the sense of place encodes the true position (true) or the agent's own estimate "
                           "(false: its spawn position plus its place head's predicted displacements, dead reckoning)")
    learn: str = _f("lowrank", "what learns during life: lowrank deltas on the genes, or full weights",
                    lambda x: x in ("lowrank", "full"), "lowrank or full")
    learn_network: bool = _f(True, "the network's weights learn in life (false: only the fast readout learns)")
    rank: int = _f(4, "rank of the within-life weight deltas (learn=lowrank)", _pos, "> 0")
    weights_dtype: str = _f("float32", "learn=lowrank: the dtype an agent holds its inherited weights in during life, "
                            "float32 or bfloat16 (half the bytes; products accumulate in float32)",
                            lambda x: x in ("float32", "bfloat16"), "float32 or bfloat16")
    dense_policy: bool = _f(False, "learn=lowrank: the policy head's weight learns a full-rank delta, not a rank-r one")
    lr: float = _f(1e-3, "Adam step size of the online update", _pos, "> 0")
    control_share: float = _f(0.0, "share of newborns (by a hash of the agent id) that learn nothing in life: an in-run "
                              "control of lifetime learning, in the learners' gene pool, era and worlds", _unit, "in [0, 1]")
    control: str = _f("learning", "what the in-run control (control_share) lacks: learning (it learns nothing), drives (it "
                      "learns from the drive_* values, not its drive gene's weights) or memory (it carries none between steps)",
                      lambda x: x in CONTROLS, f"one of {CONTROLS}")
    max_update: float = _f(0.05, "bound on the L2 norm of one update of an agent's trainable vector", _pos, "> 0")
    grad_clip: float = _f(1.0, "gradient L2 norm clip before Adam", _pos, "> 0")
    gamma: float = _f(0.99, "discount of the intrinsic return", lambda x: 0.0 <= x < 1.0, "in [0, 1)")
    center_reward: bool = _f(True, "subtract from each reward the life's average reward so far (reward centering, "
                             "Naik et al. 2024): a reward below zero on average no longer makes dying pay")
    lam: float = _f(0.8, "lambda of the actor-critic's eligibility traces, TD(lambda); 0: TD(0) without a trace "
                    "(static: a trace costs a second backward pass)", _unit, "in [0, 1]", static=True)
    obgd_step: float = _f(1.0, "step size of the actor-critic's own overshoot-bounded update along its eligibility trace "
                          "(ObGD, stream-x; needs lam > 0); 0: its gradient goes through Adam with the others", _nonneg, ">= 0")
    obgd_kappa: float = _f(2.0, "ObGD's overshoot bound: a step's L1 norm is at most 1 / obgd_kappa (stream-x: 2 for a value, "
                           "3 for a policy; below 1 a step can overshoot its TD target and the critic's error grows)", _pos, "> 0")
    entropy: float = _f(0.01, "entropy bonus of the policy", _nonneg, ">= 0")
    w_value: float = _f(0.5, "loss weight: value (TD)", _nonneg, ">= 0")
    w_forward: float = _f(1.0, "loss weight: latent next-state prediction", _nonneg, ">= 0")
    w_inverse: float = _f(0.5, "loss weight: inverse dynamics", _nonneg, ">= 0")
    inverse_input: str = _f("layers", "what inverse dynamics reads: encoder (the encoder's latents of s_t and s_t+1) "
                            "or layers (s_t's action token after the layers, and the inherited encoder's latent of "
                            "s_t+1)", lambda x: x in INVERSE_INPUTS, f"one of {INVERSE_INPUTS}")
    w_reward: float = _f(0.1, "loss weight: intrinsic reward prediction", _nonneg, ">= 0")
    w_position: float = _f(0.1, "loss weight: place head (the displacement of the next step)", _nonneg, ">= 0")
    drives: str = _f("config", "where the reward's weights come from: config (the drive_* values below), evolved (each agent's inherited "
                     "drive gene) or offset (both summed: evolution moves the hand-set drives)", lambda x: x in DRIVE_SOURCES, f"one of {DRIVE_SOURCES}")
    drive_curiosity: float = _f(-0.1, "reward weight of curiosity (the forward model's error, + RND where on); < 0: surprise hurts")
    drive_health: float = _f(10.0, "homeostatic drive weight of health: reward = D(h_t) - D(h_t+1), D = sum_i w_i "
                             "(1 - h_i / 9)^2 (10: a blow of 2 costs 0.5 at full health)", _nonneg, ">= 0")
    drive_food: float = _f(0.0, "homeostatic drive weight of food", _nonneg, ">= 0")
    drive_drink: float = _f(0.0, "homeostatic drive weight of drink", _nonneg, ">= 0")
    drive_energy: float = _f(0.0, "homeostatic drive weight of energy", _nonneg, ">= 0")
    drive_death: float = _f(0.0, "reward on the step a life ends (negative: dying hurts)")
    drive_forage: float = _f(0.0, "curiosity's weight per unit of forage need, 1 - min(food, drink) (a sated agent avoids surprise)")
    drive_fear: float = _f(0.0, "curiosity's weight added while a hostile mob is in view (negative: fear)")
    drive_play: float = _f(0.0, "curiosity's weight added while young, age < play_age (positive: a child explores, an adult settles)")
    play_age: float = _f(100.0, "the age (steps) at which play ends (agents.drive_play)", _nonneg, ">= 0")
    drive_danger: float = _f(0.0, "drive weight of danger, the hostile health near (danger_range), in zombies: r += w (danger_t - danger_t+1)")
    danger_range: str = _f("beside", "what danger counts: the hostile mobs beside (fleeing one pays as killing it) or in view "
                           "(a strike pays, a step away does not)", lambda x: x in ("beside", "view"), "beside or view")
    instinct: bool = _f(True, "the drive gene also carries an instinct: a bias of the policy's logits over the "
                        "actions, inherited and evolved like the drive weights (founders ~N(0, 1): random temperaments), never learned")
    instinct_do: float = _f(2.8, "founders' mean instinct bias of DO (strike, eat, drink, collect: a striking temperament "
                            "walls its home in with plants), added to their random temperaments; 0: none", static=True)
    reflex: float = _f(2.0, "the drive gene also carries a reflex: per kind of tile beside the agent (hostile, passive, "
                       "water, ripe plant) a bias toward turning to it and toward DO when facing it, evolved, never "
                       "learned; founders ~N(0, reflex^2); 0: none", _nonneg, ">= 0", static=True)
    seek: bool = _f(False, "the reflex gains a taxis: per kind, a bias of the moves toward the nearest one in view "
                    "(two or more steps away; negative: away), inherited and evolved like the reflex", static=True)
    reflex_need: bool = _f(False, "the reflex's pulls toward each kind (turn, DO, taxis) scaled by the need of what it "
                           "gives: water by 1 - drink, a cow or ripe plant by 1 - food, a hostile mob by 1", static=True)
    innate_prior: bool = _f(True, "the entropy bonus pulls the policy toward the agent's innate one (instinct and "
                            "reflex: a KL penalty) instead of toward uniform, which unlearns an instinct", static=True)
    rnd: bool = _f(False, "add a random-network-distillation novelty term to the intrinsic reward")
    w_rnd: float = _f(0.5, "weight of the RND term in the intrinsic reward and its loss", _nonneg, ">= 0")
    obs_norm: bool = _f(True, "the encoder reads observations normalised by the life's running mean and variance, "
                        "clipped to +-obs_clip (false: Craftax's own values, in [0, 1], the same in every life)", static=True)
    obs_clip: float = _f(5.0, "normalised observations are clipped to +-obs_clip", _pos, "> 0")
    fast_readout: float = _f(0.2, "step of the fast readout (agents/fast.py): per-life linear policy and value weights "
                             "on what fast_input reads, born at zero, learned by TD(fast_lam); 0: none", _nonneg, ">= 0", static=True)
    fast_input: str = _f("token", "what the fast readout reads: token (the action token), facing (the kind it faces), senses (the "
                         "kind on each side, the one faced) or view (those, the way to each kind in view, danger)", lambda x: x in FAST_INPUTS, f"one of {FAST_INPUTS}")
    fast_center: bool = _f(False, "the fast readout reads what fast_input reads less its life's mean, with biases", static=True)
    fast_lam: float = _f(0.0, "lambda of the fast readout's eligibility trace; 0: TD(0)", _unit, "in [0, 1]")
    fast_inherit: float = _f(0.0, "share of its first parent's fast readout a newborn starts with (fast.inherit)", _unit, "in [0, 1]")
    develop: str = _f("plateau", "when a layer grows in during life: plateau (forward loss stalls), age, or none",
                      lambda x: x in DEVELOP, f"one of {DEVELOP}")
    develop_age: int = _f(100, "develop=age: insert a layer every this many steps of age", _pos, "> 0")
    plateau_window: int = _f(50, "develop=plateau: steps between checks of the forward-loss average", _pos, "> 0")
    plateau_tol: float = _f(0.02, "develop=plateau: a check improving the loss average by less than this share stalls",
                            _unit, "in [0, 1]")
    dev_gate_lr: float = _f(10.0, "learning-rate multiplier on the gate alphas of layers inserted during life", _pos, "> 0")


@dataclass(frozen=True)
class GenePoolConfig:
    encoder_genes: int = _f(4, "pool capacity of encoder genes (observation -> tokens)", _pos, "> 0")
    layer_genes: int = _f(32, "pool capacity of layer genes (one transformer block each)", _pos, "> 0")
    head_genes: int = _f(4, "pool capacity of head genes (all output heads)", _pos, "> 0")
    drive_genes: int = _f(8, "pool capacity of drive genes (the weights of an agent's reward; used when "
                          "agents.drives=evolved or offset)", _pos, "> 0")
    init_fill: float = _f(0.5, "share of each bank holding random founder genes at the start (the rest: room "
                          "for splits)", lambda x: 0.0 < x <= 1.0, "in (0, 1]", static=True)
    evolve: bool = _f(True, "selection, splits, discards, frequencies, gene improvement (false: uniform genomes)")
    improve: str = _f("darwinian", "how genes move between generations: lamarckian, darwinian or frozen",
                      lambda x: x in IMPROVE, f"one of {IMPROVE}")
    fitness: str = _f("survival", "lifetime fitness: survival, progress (survival + learning progress), "
                      "achievements (comparison only)", lambda x: x in FITNESS, f"one of {FITNESS}")
    w_progress: float = _f(1.0, "fitness=progress: weight of the learning progress", _nonneg, ">= 0")
    update_every: int = _f(250, "steps between pool updates (improve, discard, split, frequencies)", _pos, "> 0")
    n_min: int = _f(10, "lives a gene needs before it counts as reliably fit or unfit", _pos, "> 0")
    shrink_k: float = _f(4.0, "shrinkage of gene fitness toward the pool mean: (n mean + k prior) / (n + k)",
                         _nonneg, ">= 0")
    split_top: float = _f(0.25, "reliably fit genes in this top share of their bank split", _unit, "in [0, 1]")
    discard_bottom: float = _f(0.25, "reliably unfit genes in this bottom share (and without carriers) are discarded",
                               _unit, "in [0, 1]")
    sigma_init: float = _f(0.05, "initial mutation scale of a gene (noise = sigma x tensor RMS)", _nonneg, ">= 0")
    sigma_drive: float = _f(0.5, "initial mutation scale of a drive gene (a few reward weights that learning never "
                            "moves, so evolution explores them in larger steps)", _nonneg, ">= 0")
    sigma_tau: float = _f(0.2, "log-normal self-adaptation rate of the mutation scale", _nonneg, ">= 0")
    es_lr: float = _f(1.0, "step of a gene toward its carriers' fitness-weighted perturbations", _nonneg, ">= 0")
    freq_eta: float = _f(1.0, "replicator step: x <- x exp(eta (f - f_bar) / s), s the fitness spread between lives",
                         _nonneg, ">= 0")
    freq_mix: float = _f(0.01, "share of uniform mixed into the gene frequencies (diffusion)", _unit, "in [0, 1]")
    tournament: int = _f(3, "tournament size of parent selection", _pos, "> 0")
    recent_dead: int = _f(64, "recently dead lives that stay candidates for parenthood", _pos, "> 0")
    immigrants: float = _f(0.05, "share of newborns drawn fresh from the pool by frequency", _unit, "in [0, 1]")
    crossover: float = _f(0.5, "probability of one-point crossover of the two parents' layer lists", _unit, "in [0, 1]")
    home: float = _f(1.0, "ecological inheritance: the probability that a world whose last life was at least as fit "
                     "as the recent mean goes to that life's own child (its first parent; the second by tournament); "
                     "0: every newborn's parents by tournament, wherever they lived", _unit, "in [0, 1]")
    p_swap: float = _f(0.05, "per gene: probability of a swap for a relative or a gene of the same role", _unit, "in [0, 1]")
    p_insert: float = _f(0.05, "probability that a newborn's genome gains a layer (gate closed)", _unit, "in [0, 1]")
    p_delete: float = _f(0.05, "probability that a newborn's genome loses a layer", _unit, "in [0, 1]")
    gate_sigma: float = _f(0.1, "standard deviation of the inherited gate alphas' mutation", _nonneg, ">= 0")
    assimilate_at: float = _f(0.2, "a developmental layer whose |tanh(alpha)| reached this is inherited by offspring",
                              _unit, "in [0, 1]")


@dataclass(frozen=True)
class RunConfig:
    chunk_steps: int = _f(250, "simulation steps per jitted chunk (host I/O happens between chunks)", _pos, "> 0")
    checkpoint_every: int = _f(10000, "steps between checkpoints (also one at the end and on Ctrl-C)", _pos, "> 0")
    keep_checkpoints: int = _f(3, "number of most recent checkpoints kept", _pos, "> 0")
    recent_lives: int = _f(500, "window of most recent finished lives for lifespan/achievement statistics", _pos, "> 0")
    progress: bool = _f(True, "show a progress bar")
    snapshot: bool = _f(True, "write a live snapshot for `evodevo view` (atomically, between chunks)")
    snapshot_every_s: float = _f(1.0, "minimum seconds between live snapshots", _pos, "> 0")
    devices: int = _f(0, "devices the slots are split over (0: all; world.n_slots must be a multiple)",
                      lambda x: x >= 0, ">= 0")
    birth_batch: int = _f(0, "births (and layer insertions) of a step computed together, vmapped; more in one "
                          "step take several batches (0: automatic, 1 on a CPU, n_slots/64 rounded up to a power "
                          "of two on a GPU)", _nonneg, ">= 0")


@dataclass(frozen=True)
class Config:
    seed: int = _f(0, "random seed: same seed and config give the same run")
    world: WorldConfig = field(default_factory=WorldConfig, metadata={"doc": "the continuous Craftax world"})
    agents: AgentsConfig = field(default_factory=AgentsConfig, metadata={"doc": "the agents"})
    genepool: GenePoolConfig = field(default_factory=GenePoolConfig, metadata={"doc": "the gene pool"})
    run: RunConfig = field(default_factory=RunConfig, metadata={"doc": "the host loop and its outputs"})


# --------------------------------------------------------------------------- traced hyperparameters


def traced_fields(cls) -> tuple[str, ...]:
    """The float fields of a section that the jitted step takes as traced values."""
    hints = get_type_hints(cls)
    return tuple(f.name for f in dataclasses.fields(cls) if hints[f.name] is float and not f.metadata["static"])


# The agents and genepool sections are pytrees: their traced floats are leaves, every other
# field (sizes, switches, names) is static and part of the tree's structure. Passed into a
# jitted function, a changed float does not recompile it; a changed size or switch does.
for _cls in (AgentsConfig, GenePoolConfig):
    jax.tree_util.register_dataclass(
        _cls, data_fields=list(traced_fields(_cls)),
        meta_fields=[f.name for f in dataclasses.fields(_cls) if f.name not in traced_fields(_cls)])


@struct.dataclass
class Hyper:
    """The traced hyperparameters of the simulation step: the agents and genepool sections."""

    agents: AgentsConfig
    genepool: GenePoolConfig


def hyperparams(cfg: Config) -> Hyper:
    return Hyper(agents=cfg.agents, genepool=cfg.genepool)


def statics(section):
    """`section` with its traced floats None: what static objects hold (a float read there, not from `Hyper`, fails)."""
    return dataclasses.replace(section, **{name: None for name in traced_fields(type(section))})


def compile_key(cfg: Config) -> Config:
    """The part of a Config that the jitted chunk depends on (host-only run.* keys and traced
    floats excluded): two configs with the same key share one compiled Simulation."""
    return dataclasses.replace(cfg, agents=statics(cfg.agents), genepool=statics(cfg.genepool),
                               run=RunConfig(chunk_steps=cfg.run.chunk_steps, devices=cfg.run.devices,
                                             birth_batch=cfg.run.birth_batch))


# --------------------------------------------------------------------------- loading


def _coerce(key: str, value, tp):
    """Check `value` against the field type `tp` (bool, int, float or str); ints are accepted for floats."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
        raise ConfigError(f"config key '{key}': expected {tp.__name__}, got {value!r}")
    return value


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{prefix[:-1] or '<root>'}': expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'; known keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for name, f in names.items():
        key = prefix + name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, data.get(name, {}) or {}, key + ".")
            continue
        if name not in data:
            continue
        value = _coerce(key, data[name], tp)
        check = f.metadata.get("check")
        if check is not None and not check(value):
            raise ConfigError(f"config key '{key}': {value!r} is impossible, need {f.metadata['need']}")
        kwargs[name] = value
    return cls(**kwargs)


def _cross_checks(cfg: Config) -> None:  # constraints that involve more than one key
    a = cfg.agents
    if a.d_model % a.n_heads:
        raise ConfigError(f"config key 'agents.n_heads': {a.n_heads} does not divide agents.d_model={a.d_model}")
    if a.debrief and a.think_tokens < 1:
        raise ConfigError("config key 'agents.debrief': true needs a thinking token to hold it (agents.think_tokens >= 1)")
    if a.instinct_do and not a.instinct:
        raise ConfigError(f"config key 'agents.instinct_do': {a.instinct_do} leans an instinct that is off "
                          "(set agents.instinct=true, or agents.instinct_do=0 with agents.instinct=false)")
    if a.weights_dtype != "float32" and a.learn != "lowrank":
        raise ConfigError(f"config key 'agents.weights_dtype': {a.weights_dtype} needs agents.learn=lowrank (with "
                          "learn=full the weights are the trainable vector itself); set agents.weights_dtype=float32")
    if a.obgd_step and not a.lam:
        raise ConfigError(f"config key 'agents.obgd_step': {a.obgd_step} steps along an eligibility trace, and there is "
                          "none (agents.lam=0); set agents.lam > 0 or agents.obgd_step=0")
    if a.init_depth > a.l_max:
        raise ConfigError(f"config key 'agents.init_depth': {a.init_depth} exceeds agents.l_max={a.l_max}")
    for key, on, off in (("recall", a.recall, 0), ("control", a.control == "memory", "learning")):  # memory's jobs
        if on and not a.memory_tokens:
            raise ConfigError(f"config key 'agents.{key}': {getattr(a, key)} needs memory tokens, and there are none "
                              f"(agents.memory_tokens=0); set agents.memory_tokens >= 1 or agents.{key}={off}")
    if a.memory_write == "input" and a.memory == "frozen":
        raise ConfigError(f"config key 'agents.memory_write': {a.memory_write} needs a write (agents.memory=learned or "
                          "evolved; it is frozen); set agents.memory=learned or agents.memory_write=outputs or update")
    if a.control == "drives" and a.drives == "config":
        raise ConfigError("config key 'agents.control': drives needs drives that evolve; set agents.drives=evolved or offset")
    for key in ("seek", "reflex_need"):  # parts of the reflex
        if getattr(a, key) and a.reflex <= 0:
            raise ConfigError(f"config key 'agents.{key}': true is part of the reflex, which is off (agents.reflex=0); "
                              f"set agents.reflex > 0 or agents.{key}=false")
    if cfg.run.birth_batch > cfg.world.n_slots:
        raise ConfigError(f"config key 'run.birth_batch': {cfg.run.birth_batch} exceeds world.n_slots="
                          f"{cfg.world.n_slots} (0: automatic)")


def from_dict(data: dict) -> Config:
    cfg = _build(Config, data or {}, "")
    _cross_checks(cfg)
    return cfg


to_dict = dataclasses.asdict


def parse_override(text: str) -> tuple[list[str], Any]:
    """'section.key=value' -> (['section', 'key'], yaml-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set '{text}': empty key")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = copy.deepcopy(data or {})
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set '{text}': '{part}' is not a section")
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass --config configs/default.yaml or another preset")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file '{path}' is not valid YAML: {e}".splitlines()[0]) from None
    return data or {}


def load(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    data = read_yaml(path) if path is not None else {}
    return from_dict(apply_overrides(data, list(overrides)))


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def field_docs(cls=Config, prefix: str = "") -> dict[str, str]:
    """Flat 'section.key' -> doc for every leaf field (used by tests and docs)."""
    out = {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(field_docs(hints[f.name], prefix + f.name + "."))
        else:
            out[prefix + f.name] = f.metadata["doc"]
    return out

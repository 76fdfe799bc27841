"""Drives: the weights of an agent's reward over curiosity and its own body (`kind.DRIVES`), its
instinct (agents.instinct): an innate bias of its policy over the actions, and its reflex
(agents.reflex): an innate bias toward turning to and acting on what lies beside it. All are
inherited in the drive gene and evolved; lifetime learning changes none.

    r = (w_curiosity + w_forage x forage_need(h_t) + w_fear x threat_{t+1} + w_play x young_{t+1}) x curiosity
        + D(h_t) - D(h_{t+1}) + w_danger x (danger_t - danger_{t+1}) + w_death x [died]

with D Keramati & Gutkin's homeostatic drive over the needs and threat_{t+1} 1 where the step led within
sight of a hostile mob (fear: a surprise that brings a zombie into view can hurt while others please) and
young_{t+1} 1 while the agent is younger than agents.play_age (play: a child explores, an adult settles),
and danger the health left in the hostile mobs beside the agent, or in its view (`Senses.danger`, in zombies;
agents.danger_range): a drive whose reduction pays within the step for each strike at a zombie (beside, for
fleeing it too), which the health drive pays only later and by chance, when a blow does not come.
The weights come from the config or
from the agent's inherited drive gene. Shared by the
learner's reward and the debrief that the next act reads (`debrief`, which cannot import the
learner that imports it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evodevo.agents.kind import BODY, DRIVES, NEEDS, REFLEXES

DRIVE_INIT = 0.1  # founders' drive genes: weights ~ N(0, DRIVE_INIT^2), small and random, not hand-set
# Founders' instincts: logit biases ~ N(0, INSTINCT_INIT^2), random temperaments (one founder strikes
# more, another sleeps more). At 0.1 they stayed within +-0.1 over 500k agent-steps: selection needs
# founders that differ in behaviour to choose among (and birth mutations scale with the founders').
INSTINCT_INIT = 1.0


def init_drive(key, instinct_actions: int = 0, lean_do: float = 0.0, do: int = 0, reflex: float = 0.0,
               neighbour_kinds: int = 0, seek: bool = False) -> dict:
    """A founder's drive gene: the weights of its reward (`kind.DRIVES`); with `instinct_actions`
    (agents.instinct), its instinct: an innate bias of the policy's logits over the actions, leaning
    `lean_do` toward action `do` (DO: strike, eat, drink, collect) on average (agents.instinct_do);
    with `reflex` > 0 (agents.reflex), its reflex [R, neighbour_kinds] ~ N(0, reflex^2) (`reflex_bias`),
    R = 3 rows with `seek` (agents.seek, the taxis), else 2."""
    gene = {"w": DRIVE_INIT * jax.random.normal(key, (len(DRIVES),))}
    if instinct_actions:
        lean = jnp.zeros(instinct_actions).at[do].set(lean_do)
        gene["instinct"] = lean + INSTINCT_INIT * jax.random.normal(jax.random.fold_in(key, 1), (instinct_actions,))
    if reflex > 0:
        rows = len(REFLEXES) if seek else REFLEXES.index("seek")
        gene["reflex"] = reflex * jax.random.normal(jax.random.fold_in(key, 2), (len(REFLEXES), neighbour_kinds))[:rows]
    return gene


def reflex_bias(reflex, near, facing, moves, do: int, num_actions: int, seen=None, need=None):
    """[A] one agent's reflex as biases of its logits. `reflex` [R, K], `near` [4, K] (the tiles
    beside it in the order of `moves`, the actions LEFT..DOWN), `facing` which of them it faces.
    reflex[0] . near[d] goes to the move toward each tile d it does not face (a move toward a mob,
    water or a plant only turns the player: it is how one faces them); reflex[1] . near[facing]
    goes to DO (strike, eat, drink); with a third row (agents.seek), reflex[2] . seen[d] goes to each
    move d, `seen` [4, K] the moves toward the nearest of each kind in view (a taxis). With `need` [K]
    (agents.reflex_need) every pull toward a kind is scaled by the agent's need of what it gives."""
    if need is not None:
        reflex = reflex * need
    toward = (near @ reflex[0]) * (1.0 - jax.nn.one_hot(facing, near.shape[0]))
    if reflex.shape[0] > REFLEXES.index("seek"):
        toward = toward + seen @ reflex[REFLEXES.index("seek")]
    use = near[facing] @ reflex[1]
    return jnp.zeros(num_actions).at[jnp.asarray(moves)].add(toward).at[do].add(use)


def innate_logits(drive: dict, moves, do: int, num_actions: int, near=None, facing=None, seen=None, need=None):
    """[A] one agent's inherited bias of its logits: the instinct and the reflex its drive gene
    carries (agents.instinct, agents.reflex, agents.seek); zeros for neither."""
    bias = drive.get("instinct", jnp.zeros(num_actions))
    if "reflex" in drive:
        bias = bias + reflex_bias(drive["reflex"], near, facing, moves, do, num_actions, seen, need)
    return bias


def spread(logp, innate=None):
    """What the entropy bonus raises: the policy's entropy, or with `innate` logits (agents.innate_prior)
    -KL(pi || softmax(innate)), which is highest at the innate policy rather than at uniform."""
    if innate is None:
        return -(jnp.exp(logp) * logp).sum()
    return -(jnp.exp(logp) * (logp - jax.nn.log_softmax(innate))).sum()


def weights(source: str, hp, inherited, hand_set_rows=None):
    """[N, len(DRIVES)] each agent's reward weights by agents.drives (`source`): its inherited drive gene's
    `inherited` (evolved), the config's `drive_*` values (`hp`; config) or their sum (offset: founders start
    near the hand-set drives, N(0, DRIVE_INIT^2) off them, and evolution moves them from there). The rows
    where `hand_set_rows` ([N] bool: the in-run control of drive evolution, agents.control=drives) take the
    config's values whatever the source."""
    hand_set = jnp.broadcast_to(jnp.stack([getattr(hp, f"drive_{name}") for name in DRIVES]), inherited.shape)
    w = {"evolved": inherited, "offset": hand_set + inherited}.get(source, hand_set)
    return w if hand_set_rows is None else jnp.where(hand_set_rows[:, None], hand_set, w)


def drive(w, body):
    """D(h) = sum_i w_i (1 - h_i)^2: the body's weighted deviation from its setpoints (full), over
    the needs (health, food, drink, energy in [0, 1]; `w` [NEEDS]); Keramati & Gutkin's drive."""
    return jnp.sum(w * (1.0 - body[..., :NEEDS]) ** 2, -1)


def drive_reduction(w, body, body_next):
    """r_drive = D(h_t) - D(h_{t+1}): positive when a step brings the body back toward its setpoints."""
    return drive(w, body) - drive(w, body_next)


def forage_need(body):
    """How far the most depleted of food and drink is below its setpoint, in [0, 1]: the need that
    only going out and finding something meets (a sated animal rests, a hungry one searches)."""
    return 1.0 - jnp.minimum(body[..., BODY.index("food")], body[..., BODY.index("drink")])


def reward(w, curiosity, body, body_next, died, threat=None, young=None, danger=None):
    """([N] intrinsic reward, [N] its drive part) of one step; `w` [N, len(DRIVES)], `threat` [N] whether a
    hostile mob is in view where the step led, `young` [N] whether the agent is still young, `danger` ([N] before,
    [N] after) the health left in the hostile mobs near it (None: none of the three)."""
    d = {name: w[:, i] for i, name in enumerate(DRIVES)}
    r_drive = drive_reduction(w[:, 1:1 + NEEDS], body, body_next) + d["death"] * died
    if danger is not None:
        r_drive = r_drive + d["danger"] * (danger[0] - danger[1])
    fear = 0.0 if threat is None else d["fear"] * threat
    play = 0.0 if young is None else d["play"] * young
    return (d["curiosity"] + d["forage"] * forage_need(body) + fear + play) * curiosity + r_drive, r_drive

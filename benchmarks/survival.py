"""Do the agents learn to live? Evolved drives against random agents and the ablations, per seed.

    python benchmarks/survival.py --seeds 0,1 --agent-steps 1000000          # the default config against random agents
    python benchmarks/survival.py --arms default,random,default_forage --seeds 0,1 --saved-only   # a summary, runs nothing
    python benchmarks/survival.py --arms curiosity,homeostatic,darwinian,baldwinian --seeds 0 --agent-steps 500000
    python benchmarks/survival.py --arms think_k1,think_k2,think_k2_debrief,memory_none,memory_learned --seeds 0 --agent-steps 500000

Arms (each one `--set` list away from the default config as it was before the striking temperament,
ecological inheritance and the reflex became the default: `BEFORE`; `default` is the default as it is
(since 2026-12-03 default_obgd_fast_readout's settings without the memory token); the arms of `WITH_MEMORY` were
measured on it with the memory token (`MEMORY`, one frozen memory token), the arms of `CURRENT` on the default of
2026-12-02 (default_hurt_darwinian's settings, learning by Adam alone: `ADAM`), the other arms named default_* on the
default before that, `default_averse` (`OLD_DEFAULT`), and those below the controls with the birthplace at the
spawn point, `SPAWN`):

    default       (nothing)                             the default config: everything on by default (no memory token)
    default_memory_one  default + MEMORY                 the same with the memory token (the default until 2026-12-03)
    learning_control  default + agents.control_share=0.5   the in-run control of lifetime learning on the default
    inherit_control  learning_control + agents.fast_inherit=1  the same, newborns starting with their first parent's
                                                         fast readout (what it learned, passed on outside the genes);
                                                         inherit_half_control: half of it (agents.fast_inherit=0.5)
    senses_control  learning_control + agents.fast_input=senses, fast_readout=1  the readout reading what lies beside
                                                         the agent (a reflex tuned in life) instead of the token
    view_control    the same reading also the way to each kind in view and danger (agents.fast_input=view)
    senses_inherit_control  senses_control + agents.fast_inherit=1: the readout on the senses passed on whole
    senses_body_control  senses_control + a reward that pays at once a strike at a zombie in view, a bite and a sip
                                                         (drive_danger=2.5, danger_range=view, drive_food=drive_drink=10)
    senses_silent_control  senses_control with a reward of zero: the learners moved by all but the reward
    senses_body_uncentred_control  senses_body_control + agents.center_reward=false
    senses_body_readout_control  senses_body_control with only the readout learning (agents.learn_network=false)
    body_network_control  senses_body_control's reward with only the network learning (no readout)
    facing_control  senses_control with the readout reading only the kind faced (agents.fast_input=facing);
                                                         facing_body_control: the same under senses_body_control's reward
    evolved_drives  default + agents.drives=evolved      the reward's weights evolved from small random founders
                                                         (the issue's full system on today's default)
    offset_drives   default + agents.drives=offset       the same selection started from the hand-set drives
    evolved_drives_control, offset_drives_control   the same, each with its in-run control (agents.control=drives,
                                                         control_share=0.5): half the newborns learn from the hand-set drives
    memory_control  default + agents.control=memory      the in-run control of the memory (control_share=0.5): half the
                                                         newborns carry no memory between steps (the default's frozen one)
    learned_memory_control, evolved_memory_control   the same for the write on the observation token (memory_write=
                                                         input), learned by RTRL with recall 16, or never learned in life
    default_averse  the default until 2026-12-02         surprise hurts, no health drive, learning written back
    default_no_learning   default_averse + agents.lr=1e-9   lifetime learning off (the control of learning)
    default_no_evolution  default + genepool.evolve=false  no selection (the control of evolution)
    default_centered      default + agents.center_reward=true  the reward less the life's average reward so far
                                                         (reward centering): dying no longer ends a negative return
    default_spawn         default + world.nest=spawn     newborns born at the world's spawn point (the default
                                                         until 2026-12-01), against random_spawn; and its
    default_spawn_no_learning, default_spawn_no_evolution  controls
    default_drive_genes_32  default + genepool.drive_genes=32  more founders' drive genes to select among
    default_seek  default + agents.seek=true             the reflex gains a taxis toward (or away from) the nearest
                                                         of each kind in view, evolved like the rest of it
    default_reflex_need  default + agents.reflex_need=true  the reflex acts by need: its pulls toward water
                                                         scaled by thirst, toward a cow or a ripe plant by hunger
    default_seek_need  default_seek + agents.reflex_need=true  the same with the taxis
    default_recall  default + agents.recall=16           the memory tokens' outputs recall the latent of the
                                                         observation 16 steps ago (a job for the memory)
    default_learned_recall  default_recall + agents.memory=learned   the same with the learned (RTRL) write
    default_evolved_drives  default + agents.drives=evolved  the reward's weights evolved (the issue's full system)
    default_curious  default + agents.drive_curiosity=0.1   curiosity rewarded instead of avoided (-0.1)
    default_forage  default + agents.drive_forage=0.15    averse to surprise when sated, curious below a third
                                                         of food or drink: go out only when in need
    default_needs  default + agents.drive_food=3 agents.drive_drink=3   eating and drinking rewarded (drive reduction)
    default_forage_needs  default_forage + the same drives
    default_forage_fear  default_forage + agents.drive_fear=-0.2   a surprise with a hostile mob in view hurts
    default_curious_fear  default_curious + agents.drive_fear=-0.3   curious while no hostile mob is in view
    default_play       default + agents.drive_play=0.2   curious while young (age < agents.play_age, 100), averse after
    default_drive_genes_32  default + genepool.drive_genes=32   16 founder drive genes instead of 4
    default_hurt  default + agents.center_reward=true agents.innate_prior=true agents.drive_health=10   a blow hurts
    default_hurt_darwinian  default_hurt + genepool.improve=darwinian   none of the learning written back
    default_hurt_darwinian_no_learning  default_hurt_darwinian + agents.lr=1e-9   its control (mutated newborns)
    default_hurt_needs_darwinian  default_hurt_darwinian + agents.drive_food=10 agents.drive_drink=10
    default_hurt_needs_darwinian_no_learning  the same + agents.lr=1e-9   its control
    default_control  default + agents.control_share=0.5   half the newborns learn nothing: the control in the same run
    default_fast_control  default_control + agents.lr=0.003 agents.max_update=0.15   three times the step, in-run control
    default_fast_nohurt_control  default_fast_control + agents.drive_health=0   the same without the health drive
    default_fast_homeostatic_control  default_fast_control + agents.drive_curiosity=0 agents.drive_food=10
                                                         agents.drive_drink=10   a reward over the body alone
    default_fast_silent_control  default_fast_control + agents.drive_curiosity=0 agents.drive_health=0   a reward
                                                         of zero: what learning costs with nothing to learn
    default_obgd_control  default_control + agents.lam=0.8 agents.obgd_step=1   the actor-critic steps by ObGD
                                                         (sized by its TD error), the other objectives by Adam
    default_obgd_lamarckian_control  default_obgd_control + genepool.improve=lamarckian   what the learners
                                                         learned (their critics too) written back into the genes
    default_obgd_homeostatic_control  default_obgd_control + agents.obgd_kappa=0.5 agents.drive_curiosity=0
                                                         agents.drive_food=10 agents.drive_drink=10   the body alone
    default_obgd_homeostatic_kappa2_control  the same at kappa 2 (ObGD's own bound; not run yet)
    default_fast_readout_control  default_control + agents.fast_readout=0.2   per-life linear policy and value on
                                                         the action token (agents/fast.py), learned by TD(0)
    default_obgd_fast_readout_control  default_obgd_control + the fast readout   (the readout is what learns)
    default_fast_readout_homeostatic_control, default_obgd_fast_readout_homeostatic_control   the same two with
                                                         the reward over the body alone
    default_obgd_fast_readout_centred_control  default_obgd_fast_readout_control + agents.fast_center=true   the
                                                         readout reads the token less its life's mean
    default_obgd_fast_readout_danger_control  default_obgd_fast_readout_control + agents.drive_danger=2.5   a
                                                         drive over the hostile health beside: a strike pays at once
    default_obgd_fast_readout_danger_view_control  the same with agents.danger_range=view: every hostile in view
                                                         counts, so a strike pays and a step away does not
    default_obgd_fast_readout_trace_control, default_obgd_fast_readout_trace_homeostatic_control
                                                         default_obgd_fast_readout_control and its homeostatic arm
                                                         + agents.fast_lam=0.8: the readout's eligibility trace
    default_hurt_fast  default_hurt + agents.lr=0.003 agents.max_update=0.15   three times the step and its bound
    full          agents.drives=evolved                 drive genes: evolution decides what agents want
    random        agents.kind=random world.nest=drink   the baseline: random agents in the default world
    random_spawn  agents.kind=random world.nest=spawn   the baseline of the arms born at the spawn point; every
                                                         arm is measured against random agents under its own
                                                         world rules (`baseline`)
    curiosity     agents.drive_curiosity=1.0            curiosity only (the default until the averse arm's result)
    homeostatic   agents.drive_health/food/drink/energy=4, agents.drive_death=-1 (hand-set, not evolved)
    darwinian     agents.drives=evolved genepool.improve=darwinian   lifetime learning not written back;
                                                         genes move by ES over their birth mutations
    baldwinian    agents.drives=evolved genepool.improve=frozen      only drives and architecture are
                                                         inherited (pool weights move only at splits)
    homeostatic_dense  homeostatic + agents.lam=0.8 agents.dense_policy=true   (TD(lambda), full-rank policy delta)
    full_dense    agents.drives=evolved agents.lam=0.8 agents.dense_policy=true
    averse        agents.drive_curiosity=-0.1           hand-set aversion to surprise (no evolved drives; the default before the reflex)
    averse_strong       agents.drive_curiosity=-0.5
    averse_homeostatic  averse + drive_health/food/drink/energy=1, drive_death=-1
    averse_dense        averse + agents.lam=0.8 agents.dense_policy=true
    averse_forage       averse + agents.drive_forage=0.15    sated: averse to surprise; curious once the most
                                                         depleted of food and drink is below ~1/3
    averse_forage_needs averse_forage + drive_food/drink=10, drive_death=-1
    averse_low_entropy  averse + agents.entropy=0.001      a policy allowed to leave uniform
    averse_hurt         averse + drive_health=10, drive_death=-1   a zombie's blow hurts
    averse_hurt_needs   averse_hurt + drive_food/drink=3
    averse_hurt_forage  averse_hurt + drive_forage=0.15
    averse_darwinian    averse + genepool.improve=darwinian   the inheritance modes (issue 10 item 5) with the
    averse_baldwinian   averse + genepool.improve=frozen      default's hand-set drives: only selection and
                                                         birth mutations (darwinian) or only selection
                                                         of genes and architecture (baldwinian)
    averse_place_off    averse + agents.place_input=false      the grid code from dead reckoning, not the true position
    averse_inverse_layers  averse + agents.inverse_input=layers  inverse dynamics through the transformer
    think_k1      averse + agents.think_tokens=1        one thinking token, the action's (the default)
    think_k2      averse + agents.think_tokens=2        a thinking token before the action's
    think_k2_debrief    think_k2 + agents.debrief=true  the first of them holds the last step's outcome
                                                         (prediction error, body change, reward)
    memory_none   averse + agents.memory_tokens=0       no memory tokens
    memory_learned      averse + agents.memory=learned  a memory whose write learns (RTRL, `agents/memory.py`)
    averse_instinct     averse + agents.instinct=true    an evolved instinct: a heritable bias of the policy
                                                         over the actions (benchmarks/skills.py: striking
                                                         half the time buys ~2x random's lifespan)
    full_instinct       full + agents.instinct=true
    averse_striker      averse_instinct + agents.instinct_do=2.8   founders lean to DO (a striking temperament)
    averse_striker_needs  averse_striker + agents.drive_food=1 agents.drive_drink=1
    full_striker        full_instinct + agents.instinct_do=2.8
    averse_instinct_home  averse_instinct + genepool.home=1   ecological inheritance: a fit life's world goes to its child
    averse_home         averse + genepool.home=1
    averse_striker_home averse_striker + genepool.home=1
    striker_home_darwinian  averse_striker_home + genepool.improve=darwinian   learning not written back
    striker_home_no_entropy averse_striker_home + agents.entropy=0    no pull of the policy toward uniform
    striker_home_neutral  striker_home_darwinian with agents.drive_curiosity=0: a reward of zero, so the policy
                                                         is the instinct plus the entropy bonus's pull (a
                                                         control for what the averse reward teaches)
    striker_home_needs  averse_striker_home + agents.drive_food=3 agents.drive_drink=3   a scripted striker that
                                                         also eats lives 1.57-1.66x random (skills.py, 1M)
    striker_home_prior  averse_striker_home + agents.innate_prior=true   the entropy bonus pulls toward the
                                                         innate policy, not toward uniform
    striker_home_reflex striker_home_prior + agents.reflex=2   a heritable reflex: turn to a zombie, cow, water or
                                                         ripe plant beside it and DO when facing it (evolved from
                                                         random founders' reflexes ~N(0, 2^2))
    striker_home_reflex_entropy  averse_striker_home + agents.reflex=2   the reflex without innate_prior

Each (arm, seed) runs as its own result file OUT/<arm>-s<seed>.json (reused unless --fresh), so a
set too long for one sitting can be run across several. Per arm and seed: lives, mean lifespan,
Crafter score, achievements (% of lives) and causes of death of the lives that end in the last 20% of the run, the
shelter and the commonest actions there, the mean lifespan by the fifth of the run a life began in, the quartiles of the last window's lifespans, and the population's drive weights at the end. Writes OUT/survival.png (benchmarks/ablations.py's plot),
OUT/frontier.png (each arm's lifespan and Crafter score over random's: the trade-off between them),
OUT/homes.png (lifespan, room and water in reach over the run), OUT/in_run.png (the arms with an in-run control:
learners less controls over the last 80%, with a 95% interval), OUT/drives.png (the arms whose drive weights evolve:
the population's mean weight of each drive over the run), OUT/do_gap.png (the arms with an in-run control of learning:
P(DO) in front of each kind faced, learners less controls, beside the drift of DO's logit their step there makes),
ends with one JSON line (every arm's lifespan over random's, per seed), and exits 1 when the
--goal-arm's (the default config's) mean lifespan is below --goal (1.5) times random's on any seed
run here.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ablations  # noqa: E402
from ablations import ADAM, BODY_ONLY, MEMORY, config  # noqa: E402

from evodevo.agents.kind import in_control  # noqa: E402

HOMEOSTATIC = ["agents.drive_curiosity=1.0", "agents.drive_health=4", "agents.drive_food=4", "agents.drive_drink=4", "agents.drive_energy=4",
               "agents.drive_death=-1"]
# the striking temperament with ecological inheritance: the best arm so far, and the base of the arms that
# take it apart
STRIKER_HOME = ["agents.drive_curiosity=-0.1", "agents.instinct=true", "agents.instinct_do=2.8", "genepool.home=1"]
ARMS = {
    "full": ["agents.drives=evolved"],
    # the baseline: random agents in the default world (a newborn born where its world's player last drank,
    # world.nest=drink); the arms measured before that rule are measured against random agents born at the
    # spawn point (`baseline`: random agents under an arm's own world rules)
    "random": ["agents.kind=random", "world.nest=drink"],
    "random_spawn": ["agents.kind=random", "world.nest=spawn"],
    "curiosity": ["agents.drive_curiosity=1.0"],
    "homeostatic": HOMEOSTATIC,
    "darwinian": ["agents.drives=evolved", "genepool.improve=darwinian"],
    "baldwinian": ["agents.drives=evolved", "genepool.improve=frozen"],
    # the one lead so far (a full-rank policy delta with TD(lambda)), with hand-set and with evolved drives
    "homeostatic_dense": HOMEOSTATIC + ["agents.lam=0.8", "agents.dense_policy=true"],
    "full_dense": ["agents.drives=evolved", "agents.lam=0.8", "agents.dense_policy=true"],
    # what evolution chose on seed 1 at 1M agent-steps (curiosity -0.13, other drives near 0), hand-set:
    # is an aversion to surprise on its own what made those lives long?
    "averse": ["agents.drive_curiosity=-0.1"],
    # around the averse arm: a stronger aversion; aversion plus needs and a death signal; aversion with
    # the TD(lambda) learner and a full-rank policy delta
    "averse_strong": ["agents.drive_curiosity=-0.5"],
    "averse_homeostatic": ["agents.drive_curiosity=-0.1", "agents.drive_health=1", "agents.drive_food=1",
                           "agents.drive_drink=1", "agents.drive_energy=1", "agents.drive_death=-1"],
    "averse_dense": ["agents.drive_curiosity=-0.1", "agents.lam=0.8", "agents.dense_policy=true"],
    # a need-gated curiosity: averse agents stay home and die of thirst (35% of deaths, 1% of lives
    # ever drink); with forage, thirst or hunger turns the aversion into curiosity
    "averse_forage": ["agents.drive_curiosity=-0.1", "agents.drive_forage=0.15"],
    # the policy barely leaves uniform (entropy 2.80 of 2.83 nats): a 10x smaller entropy bonus
    "averse_low_entropy": ["agents.drive_curiosity=-0.1", "agents.entropy=0.001"],
    # a hit that hurts (issue 10: "the reward an agent learns from has to make a hit hurt"): zombies are
    # the price of every step away from home, so the arms that move more need it first
    "averse_hurt": ["agents.drive_curiosity=-0.1", "agents.drive_health=10", "agents.drive_death=-1"],
    "averse_hurt_needs": ["agents.drive_curiosity=-0.1", "agents.drive_health=10", "agents.drive_food=3",
                          "agents.drive_drink=3", "agents.drive_death=-1"],
    "averse_hurt_forage": ["agents.drive_curiosity=-0.1", "agents.drive_forage=0.15", "agents.drive_health=10",
                           "agents.drive_death=-1"],
    "averse_darwinian": ["agents.drive_curiosity=-0.1", "genepool.improve=darwinian"],
    "averse_baldwinian": ["agents.drive_curiosity=-0.1", "genepool.improve=frozen"],
    "averse_forage_needs": ["agents.drive_curiosity=-0.1", "agents.drive_forage=0.15", "agents.drive_food=10",
                            "agents.drive_drink=10", "agents.drive_death=-1"],
    # the agent's own parts (issue 11), in the one regime where learning changes lifespan (averse)
    "averse_place_off": ["agents.drive_curiosity=-0.1", "agents.place_input=false"],
    "averse_inverse_layers": ["agents.drive_curiosity=-0.1", "agents.inverse_input=layers"],
    # thinking tokens with a job and memory (issue 11): which pays for its cost in lifespan
    "think_k1": ["agents.drive_curiosity=-0.1", "agents.think_tokens=1"],
    "think_k2": ["agents.drive_curiosity=-0.1", "agents.think_tokens=2"],
    "think_k2_debrief": ["agents.drive_curiosity=-0.1", "agents.think_tokens=2", "agents.debrief=true"],
    "memory_none": ["agents.drive_curiosity=-0.1", "agents.memory_tokens=0"],
    "memory_learned": ["agents.drive_curiosity=-0.1", "agents.memory=learned"],
    # an evolved instinct (a heritable bias of the policy over actions): benchmarks/skills.py measured a
    # random policy that strikes half the time living ~2x as long as a uniform one; can evolution find it?
    "averse_instinct": ["agents.drive_curiosity=-0.1", "agents.instinct=true"],
    "full_instinct": ["agents.drives=evolved", "agents.instinct=true"],
    # the averse learner stays put (moves: 5% of its actions) in a home its near-random ancestors walled in with
    # plants; a striking temperament (skills.py: DO half the time) walls itself in: founders leaning to DO
    # (2.8: P(DO) = 0.5 beside uniform logits), then evolved
    "averse_striker": ["agents.drive_curiosity=-0.1", "agents.instinct=true", "agents.instinct_do=2.8"],
    "full_striker": ["agents.drives=evolved", "agents.instinct=true", "agents.instinct_do=2.8"],
    # a striker's hedge pays the later lives of its world, whoever their parents (first lives: 164 steps
    # against random's 148; by the 4th fifth 293 against 136): with ecological inheritance a fit life's
    # world goes to its own child, so a lineage keeps what it built and selection can see it
    "averse_instinct_home": ["agents.drive_curiosity=-0.1", "agents.instinct=true", "genepool.home=1"],
    "averse_home": ["agents.drive_curiosity=-0.1", "genepool.home=1"],
    "averse_striker_home": STRIKER_HOME,
    # the striking learners strike less as the run goes on (P(DO) 0.45 -> 0.20 at 1M) while selection raises the
    # instinct's DO bias (3.2 -> 3.8): the learned logits cancel it, and Lamarckian inheritance passes that on.
    # Which pull is it: learning written back into the genes, or the entropy bonus's pull toward uniform?
    "striker_home_darwinian": [*STRIKER_HOME, "genepool.improve=darwinian"],
    "striker_home_no_entropy": [*STRIKER_HOME, "agents.entropy=0"],
    # with the same share of strikes the darwinian learners live 10-14% shorter than a blind striker
    # (skills.py): is it what the surprise-averse reward teaches them (to stay put and idle)?
    "striker_home_neutral": [*STRIKER_HOME, "genepool.improve=darwinian", "agents.drive_curiosity=0"],
    # the hedge alone reaches 1.41-1.54x random at 1M (skills.py striker+spare, seeds 1 / 0), eating from it
    # 1.57-1.66x: do food and drink drives teach the sheltered learners to eat?
    "striker_home_needs": [*STRIKER_HOME, "agents.drive_food=3", "agents.drive_drink=3"],
    # the entropy bonus pulls the whole policy, instinct included, toward uniform: with innate_prior it pulls it
    # toward the innate policy instead (a KL penalty), so the learned logits have no reason to cancel the instinct
    "striker_home_prior": [*STRIKER_HOME, "agents.innate_prior=true"],
    # the learners' gap to a scripted striker is zombie deaths, and a striker that turns to a zombie beside it and
    # strikes lives 1.66-1.71x random (skills.py striker+fight, 1M): a heritable reflex to what lies beside the
    # agent (turn to it, DO when facing it; per zombie, cow, water, ripe plant), founders' reflexes random
    "striker_home_reflex": [*STRIKER_HOME, "agents.innate_prior=true", "agents.reflex=2"],
    # which of the two carries the reflex arm: the reflex with the entropy bonus's pull toward uniform
    "striker_home_reflex_entropy": [*STRIKER_HOME, "agents.reflex=2"],
    # walled in, the striking learners die of thirst and starvation (34% / 31% at 1M, seed 0): now that they
    # are sheltered, do food and drink drives pay?
    "averse_striker_needs": ["agents.drive_curiosity=-0.1", "agents.instinct=true", "agents.instinct_do=2.8",
                             "agents.drive_food=1", "agents.drive_drink=1"],
}


# The defaults every arm above was measured on, before the striking temperament with ecological inheritance
# and the reflex became the default: each arm starts from them, so it means what it meant (and its saved
# results stay valid). The arm `default` is the default config as it is now.
BEFORE = ["agents.instinct=false", "agents.instinct_do=0", "agents.reflex=0", "agents.innate_prior=false",
          "genepool.home=0", "world.nest=spawn"]
SPAWN = ["world.nest=spawn"]  # the birthplace before world.nest=drink became the default
FAST = ["agents.lr=0.003", "agents.max_update=0.15"]  # three times the step and its bound (default_fast_control)
FAST_READOUT = 0.2  # agents.fast_readout's step in the survival arms (within_life.py: at 1.0 its critic is unsound)
OBGD = ["agents.lam=0.8", "agents.obgd_step=1.0"]  # the actor-critic's TD(lambda) step by ObGD (default_obgd_control)
HURT = ["agents.center_reward=true", "agents.innate_prior=true", "agents.drive_health=10"]  # default_hurt
# The default until 2026-12-02, before it took default_hurt_darwinian's settings: every arm below was measured on
# it (NOW: the arms relative to it; the others also with BEFORE), except those in CURRENT
OLD_DEFAULT = ["agents.center_reward=false", "agents.innate_prior=false", "agents.drive_health=0",
               "genepool.improve=lamarckian"]
# Arms relative to the default as it is now (not pinned to BEFORE): the default, and the controls of its claim
# that the population lives longer because of lifetime learning and of evolution
NOW = {
    "default_averse": [],  # the default until 2026-12-02: surprise hurts (curiosity -0.1), learning written back
    "default_no_learning": ["agents.lr=0.000000001"],  # the learners' update steps ~0: instinct and reflex alone
    "default_no_evolution": ["genepool.evolve=false"],  # uniform genomes from the founders' frozen pool
    # the averse reward is below zero on every step and death ends the return: the fatal step's TD error is
    # positive in 93-97% of deaths (+3.3 return-stds, value -3.5), so learning reinforces what led to death.
    # Reward centering subtracts the life's average reward, so living costs nothing that dying would save
    "default_centered": ["agents.center_reward=true"],
    # learning within life, none of it written back into the genes (they move by an ES over birth mutations):
    # is it the Lamarckian write-back of what the learners learned, not the learning, that costs lifespan?
    "default_darwinian": ["genepool.improve=darwinian"],
    # centering stops the reward from paying for death; the innate prior stops the entropy bonus from pulling the
    # policy away from the inherited reflex (each alone: a tie with no learning on seed 0). Both together
    "default_centered_prior": ["agents.center_reward=true", "agents.innate_prior=true"],
    # ...and a blow that hurts: the homeostatic drive on health (a zombie's hit of 2 at full health -0.49, at
    # half health -1.7), the one reward that pays for what keeps a body alive, step by step, before it dies
    "default_hurt": HURT,
    # within_life.py: the health-drive learner's policy moves little within a life (TV 0.07), so is its gain the
    # lamarckian write-back's? The same learning, none of it written back into the genes
    "default_hurt_darwinian": [*HURT, "genepool.improve=darwinian"],
    # its control: the same arm with learning off. default_no_learning keeps the lamarckian mode, whose newborns
    # carry their parents' genes unmutated; this one's carry mutated copies, as default_hurt_darwinian's do
    "default_hurt_darwinian_no_learning": [*HURT, "genepool.improve=darwinian", "agents.lr=0.000000001"],
    # default_hurt_darwinian loses to its control where starvation ends half the lives (seed 0): the drive
    # pays for eating only once hunger has begun to take health. Food and drink weighed as health is
    "default_hurt_needs_darwinian": [*HURT, "agents.drive_food=10", "agents.drive_drink=10", "genepool.improve=darwinian"],
    "default_hurt_needs_darwinian_no_learning": [*HURT, "agents.drive_food=10", "agents.drive_drink=10",
                                                 "genepool.improve=darwinian", "agents.lr=0.000000001"],
    # within a life the default's policy moves little (benchmarks/within_life.py: TV 0.09-0.14 from the policy it
    # was born with by age 100-300), held by both the step size and the update's bound: three times each
    "default_hurt_fast": [*HURT, "agents.lr=0.003", "agents.max_update=0.15"],
    # seed 4's 4 founder drive genes carried reflexes against what pays and evolution never turned them: 4x the room
    "default_drive_genes_32": [*SPAWN, "genepool.drive_genes=32"],
    # a taxis: the reflex gains a row, per kind a bias of the moves toward the nearest one in view (water
    # out of reach: 31-33% of the default's lives end by thirst, 1% drink)
    "default_seek": [*SPAWN, "agents.seek=true"],
    # the default's late lives end by starvation and thirst (56 / 33%, seed 0), and evolution turns its reflex away
    # from ripe plants and water beside it (-4.7 / -2.6) and its taxis away from water in view (-3.3 / -2.1): an
    # eaten plant or a walk out of a walled home is a loss when sated. A reflex that acts by need (a sated agent
    # feels no pull toward food or water, a hungry or thirsty one does), without and with the taxis
    "default_reflex_need": [*SPAWN, "agents.reflex_need=true"],
    "default_seek_need": [*SPAWN, "agents.seek=true", "agents.reflex_need=true"],
    # a job for the memory (issue #11): recall the latent of the observation 16 steps ago, with the frozen
    # write (the default) and with the learned one
    "default_recall": [*SPAWN, "agents.recall=16"],
    "default_learned_recall": [*SPAWN, "agents.memory=learned", "agents.recall=16"],
    # the full system on today's base: the reward's weights evolved in the drive gene (founders
    # N(0, 0.1^2)) beside the instinct and reflex; and a hand-set taste for surprise instead of the aversion
    "default_evolved_drives": [*SPAWN, "agents.drives=evolved"],
    "default_curious": [*SPAWN, "agents.drive_curiosity=0.1"],
    # neither side has both halves of the goal (averse: 1.6x random, Crafter below; curious: Crafter 1.6-2.2,
    # 0.7x): go out when in need, stay in when sated. Curiosity's weight -0.1 + 0.15 x (1 - min(food, drink)),
    # positive below a third of food or drink. Measured before the reflex, when zombies killed whoever left
    "default_forage": [*SPAWN, "agents.drive_forage=0.15"],
    # the default's lives end by starvation beside ripe plants (P(DO | facing one) 0.17): an eaten plant is a
    # surprise, which the averse reward punishes, and nothing rewards eating. Food and drink drives on top
    "default_needs": [*SPAWN, "agents.drive_food=3", "agents.drive_drink=3"],
    "default_forage_needs": [*SPAWN, "agents.drive_forage=0.15", "agents.drive_food=3", "agents.drive_drink=3"],
    # out foraging, zombies kill (forage, seed 1: 35% of deaths): fear makes a surprise hurt while a hostile mob
    # is in view (curiosity's weight -0.2 lower there), so the forager learns to keep zombies out of sight
    "default_forage_fear": [*SPAWN, "agents.drive_forage=0.15", "agents.drive_fear=-0.2"],
    "default_curious_fear": [*SPAWN, "agents.drive_curiosity=0.1", "agents.drive_fear=-0.3"],
    # curious agents unlock more than random (Crafter 1.6-2.2) and die young of zombies; a newborn's birthplace
    # is cleared of hostile mobs (world.spawn_clear_radius): play makes the young curious (-0.1 + 0.2) and
    # leaves the adult averse, so a life may gather its breadth early and settle after
    "default_play": [*SPAWN, "agents.drive_play=0.2"],
    # the default before world.nest=drink (a newborn born at its world's spawn point), and its controls
    "default_spawn": [*SPAWN],
    "default_spawn_no_learning": [*SPAWN, "agents.lr=0.000000001"],
    "default_spawn_no_evolution": [*SPAWN, "genepool.evolve=false"],
}
ARMS.update(NOW)
# Arms relative to the default of 2026-12-02 (default_hurt_darwinian's settings), learning by Adam alone: pinned there by
# ADAM since the default took ObGD's learner with the fast readout (2026-12-03), so each means what it meant
CURRENT = {
    # learning and its control in one run: half the newborns, by a hash of their agent id, learn nothing
    # (agents.control_share). Both halves draw their genes from one pool in one era, in the same worlds, so what
    # separates them is lifetime learning alone, not the path evolution took (the separate control runs of
    # default_hurt_darwinian differ in that too: -6% / +30% / -4%)
    "default_control": ["agents.control_share=0.5"],
    # learning three times faster (default_hurt_fast lived 267.5 / 196.8 in runs of its own) against its in-run
    # control: does learning that moves the policy more cost lifespan, or was that the run's path too?
    "default_fast_control": [*FAST, "agents.control_share=0.5"],
    # ...its learners die more by zombies than its controls: is it the health drive (a blow that hurts teaching
    # them to stop striking back)? The same without it (the reward: curiosity -0.1, centered)
    "default_fast_nohurt_control": [*FAST, "agents.drive_health=0", "agents.control_share=0.5"],
    # within a life (within_life.py, arm fast3_nohurt) the surprise-averse reward teaches standing still and
    # striking (P(DO) 0.64 -> 0.92 at ages 100-200: a strike at nothing is the least surprising act), and with a
    # reward of zero (fast3_silent) the policy still moves most of the way: a reward over the body alone, and
    # the must-fail control of a reward of zero, each against its in-run control
    "default_fast_homeostatic_control": [*FAST, *BODY_ONLY, "agents.control_share=0.5"],
    "default_fast_silent_control": [*FAST, "agents.drive_curiosity=0", "agents.drive_health=0",
                                    "agents.control_share=0.5"],
    # with a reward of zero and no other objective, Adam's fixed-size steps still move the policy as far as the
    # reward does (within_life.py fast3_bare): the critic's noise. ObGD steps by the TD error, bounded
    "default_obgd_control": [*OBGD, "agents.control_share=0.5"],
    # ...which learns nothing measurable. Under darwinian inheritance nothing a life learns is kept, the critic
    # included: every newborn's value head is one that evolution never asked to predict anything, and the
    # actor's first steps follow its errors. With the learning written back (lamarckian), a newborn inherits
    # the critics its fitter forebears learned
    "default_obgd_lamarckian_control": [*OBGD, "genepool.improve=lamarckian", "agents.control_share=0.5"],
    # ObGD learning from the body alone (curiosity's per-step error is noise to the actor: within_life.py's
    # obgd_kappa01 moves as far with the reward as with none), its bound four times looser (obgd_kappa 0.5). Measured
    # unsound: below 1 ObGD's step can overshoot, and this learner's |TD error| grows with age to ~30 (within_life.py
    # obgd_homeostatic); seeds 0-2: +10.4 / -2.8 / -6.6 against its controls
    "default_obgd_homeostatic_control": [*OBGD, "agents.obgd_kappa=0.5", *BODY_ONLY, "agents.control_share=0.5"],
    # the same reward at ObGD's own bound (kappa 2), whose critic stays sound (within_life obgd_homeostatic_kappa2)
    "default_obgd_homeostatic_kappa2_control": [*OBGD, *BODY_ONLY, "agents.control_share=0.5"],
    # every life normalises its observations from scratch (running mean and variance from birth): the encoder
    # an agent inherits reads inputs whose scale changes through its first steps and differs between lives, and
    # what it learns early is learned on inputs that later read otherwise. Craftax's own values (in [0, 1]),
    # the same in every life, with the default learner and with ObGD's
    "default_raw_obs_control": ["agents.obs_norm=false", "agents.control_share=0.5"],
    "default_obgd_raw_obs_control": [*OBGD, "agents.obs_norm=false", "agents.control_share=0.5"],
    # within_life.py's positive control (--pays noop: a reward of 1 for one action) showed the network's own learner
    # too slow for a life (P(noop) 0.02 -> 0.05 by ages 100-200 under Adam; ObGD's bound, no movement at all). The
    # fast readout (agents/fast.py: per-life linear policy and value weights on the action token, from zero at
    # birth, normalised TD(0) steps) at step 0.2 raises it to 0.17 by ages 50-100 and 0.38 by 100-200, its critic
    # sound (|TD error| 0.15-0.25; at step 1.0, 1.5-3). On the default learner, and on ObGD's, which drifts least,
    # so that the readout is what learns within the life. Measured: Adam's s0 -5.2; ObGD's s0-3 +7.2 / +3.9 / +5.4 /
    # +3.9 against their controls, pooled +5.1 ± 2.4
    "default_fast_readout_control": [f"agents.fast_readout={FAST_READOUT}", "agents.control_share=0.5"],
    "default_obgd_fast_readout_control": [*OBGD, f"agents.fast_readout={FAST_READOUT}", "agents.control_share=0.5"],
    # ...the one learner that leans above its in-run control on fresh seeds (seeds 0-6: +4.2 ± 1.8), every newborn
    # learning: the goal's runs (1.5x random on seeds 0 and 1) that it must pass to become the default
    "default_obgd_fast_readout": [*OBGD, f"agents.fast_readout={FAST_READOUT}"],
    # ...the default's reward is mostly surprise (curiosity -0.1), which within_life.py showed teaching stillness and
    # striking at nothing: a learner that can learn within a life, from a reward over the body alone
    "default_fast_readout_homeostatic_control": [f"agents.fast_readout={FAST_READOUT}", *BODY_ONLY,
                                                 "agents.control_share=0.5"],
    "default_obgd_fast_readout_homeostatic_control": [*OBGD, f"agents.fast_readout={FAST_READOUT}", *BODY_ONLY,
                                                      "agents.control_share=0.5"],
    # ...centred (agents.fast_center): within a life ~80% of the token's squared norm is its life mean, so a step in one
    # state moves every state's logits. within_life.py found the centred readout learning the same (TV 0.05-0.10, P(DO)
    # and P(DO | facing a zombie) +0.02-0.05 either way): not run, the CPU went to the uncentred arm's seeds 4-7
    "default_obgd_fast_readout_centred_control": [*OBGD, f"agents.fast_readout={FAST_READOUT}",
                                                  "agents.fast_center=true", "agents.control_share=0.5"],
    # ...with a reward that pays within the step for striking the zombie beside (agents.drive_danger: a drive over the
    # health left in the hostile mobs beside, 2.5: a strike pays 0.5, a full-health agent's cost of a blow). Paid for
    # that contingency (within_life.py --pays do --when hostile) the readout raised P(DO | facing a zombie) +0.09-0.18.
    # Measured s0: +7.6 ± 4.5 (without the drive +7.2 ± 4.9): nothing added; the late population's reflex already
    # strikes a faced hostile 90% of the time, and its late lives die of starvation 41%, zombies 38%, thirst 17%
    "default_obgd_fast_readout_danger_control": [*OBGD, f"agents.fast_readout={FAST_READOUT}", "agents.drive_danger=2.5",
                                                 "agents.control_share=0.5"],
    # ...counting every hostile mob in view (agents.danger_range=view): beside, fleeing a zombie pays as much as killing it.
    # Measured s0 / s1: -2.1 ± 4.7 / -3.7 ± 4.9 (without the drive +7.2 / +3.9); starvation 51% / 49% of late deaths
    "default_obgd_fast_readout_danger_view_control": [*OBGD, f"agents.fast_readout={FAST_READOUT}", "agents.drive_danger=2.5",
                                                      "agents.danger_range=view", "agents.control_share=0.5"],
    # ...with eligibility traces on the readout (agents.fast_lam=0.8): by the late run the lives die of hunger and thirst,
    # met over many steps of searching, and TD(0) credits an act only through the next state's value. With the
    # default's reward and with a reward over the body alone (food and drink drives). Measured s0: +8.8 ± 4.6
    # (without the trace +7.2) and, over the body alone, +4.8 ± 3.8 (without -2.2 ± 4.3). A pay 5 steps late is
    # not learned within a life
    "default_obgd_fast_readout_trace_control": [*OBGD, f"agents.fast_readout={FAST_READOUT}", "agents.fast_lam=0.8",
                                                "agents.control_share=0.5"],
    "default_obgd_fast_readout_trace_homeostatic_control": [*OBGD, f"agents.fast_readout={FAST_READOUT}",
                                                            "agents.fast_lam=0.8", *BODY_ONLY, "agents.control_share=0.5"],
}
ARMS.update(CURRENT)
# Arms measured on the default of 2026-12-03 (default_obgd_fast_readout's settings, ObGD's learner) with its memory token
# (MEMORY): `default_memory_one` is that default
WITH_MEMORY = {
    "default_memory_one": [],
    # the full system on today's default: the reward's weights evolved in the drive gene (founders N(0, 0.1^2),
    # far below the hand-set health drive of 10), beside the instinct and reflex it carries anyway. Its ablation,
    # hand-set drives, is the default
    "evolved_drives": ["agents.drives=evolved"],
    # the same selection started from the hand-set drives: each founder's weights N(0, 0.1^2) off the default's, moved
    # by birth mutations (genepool.sigma_drive) and selection. Does selection on what the agents want improve on the
    # drives it starts from? (The default is its ablation, evolution of the weights off)
    "offset_drives": ["agents.drives=offset"],
    # drive evolution against its ablation in one run (agents.control=drives): half the newborns, by the agent-id hash,
    # learn from the hand-set drives instead of their drive gene's weights, beside those that use theirs, from one pool,
    # in one era and the same worlds (runs of their own differed by +18 / -17 steps, inside what a rerun differs by)
    "evolved_drives_control": ["agents.drives=evolved", "agents.control=drives", "agents.control_share=0.5"],
    "offset_drives_control": ["agents.drives=offset", "agents.control=drives", "agents.control_share=0.5"],
    # does a memory pay in lifespan (issue #11)? Half the newborns carry none from one step to the next (their memory
    # is reset to a newborn's at every act), beside those that keep it, in one run: the default's frozen memory (the
    # layers' running sum), the write on the observation token learned by RTRL with a job (recall 16), and the same
    # write never learned in life (its probe held as much of the past as the learned one: benchmarks/cognition.py)
    "memory_control": ["agents.control=memory", "agents.control_share=0.5"],
    "learned_memory_control": ["agents.memory=learned", "agents.memory_write=input", "agents.recall=16",
                               "agents.control=memory", "agents.control_share=0.5"],
    "evolved_memory_control": ["agents.memory=evolved", "agents.memory_write=input", "agents.control=memory",
                               "agents.control_share=0.5"],
}
ARMS.update(WITH_MEMORY)
# Arms relative to the default as it is: since 2026-12-03, WITH_MEMORY's default without the memory token, which no
# memory paid for (memory_control: -3.4 +- 2.1 steps over five runs); as an arm of its own it was default_memory_none
# a reward that pays at once for each act that keeps a life going (senses_body_control and the arms after it)
AT_ONCE = ["agents.drive_food=10", "agents.drive_drink=10", "agents.drive_danger=2.5", "agents.danger_range=view"]
SENSES = ["agents.control_share=0.5", "agents.fast_input=senses", "agents.fast_readout=1.0"]  # senses_control
LATEST = {
    "default": [],
    # lifetime learning against its ablation in one run, on this default: half the newborns (the agent-id hash) learn
    # nothing (agents.control=learning); measured with the memory token as default_obgd_fast_readout_control
    "learning_control": ["agents.control_share=0.5"],
    # the same with what a parent learned passed on: a newborn starts with its first parent's fast readout where a slot
    # holds that parent (agents.fast_inherit); the controls' readouts stay zero, so the difference is both channels
    "inherit_control": ["agents.control_share=0.5", "agents.fast_inherit=1.0"],
    # half of it passed on: a lineage's readout a geometric sum, at most twice one life's learning
    "inherit_half_control": ["agents.control_share=0.5", "agents.fast_inherit=0.5"],
    # the readout on the senses instead of the token (agents.fast_input=senses): a reflex tuned in life, each step
    # moving only the states that share what lies beside the agent, so it can take a full NLMS step
    "senses_control": SENSES,
    # its learners lost by 19 steps, fleeing a zombie's side (its value saw nothing a step off): the readout on the view
    "view_control": ["agents.control_share=0.5", "agents.fast_input=view", "agents.fast_readout=1.0"],
    # ...and the view's learners lost too (a life meets a zombie ~9 times: too few for its critic, born at zero, to learn
    # more than the next step): the readout on the senses passed on whole, a lineage one learner over its lives (the
    # senses mean to a child what they meant to its parent, where the token, read by a mutated network, did not)
    "senses_inherit_control": [*SENSES, "agents.fast_inherit=1.0"],
    # the senses readout learns what pays within the step (within_life.py) and its learners unlearned the strike, which
    # the default's reward pays only at the kill: a reward that pays at once for each act that keeps a life going, a
    # strike at a zombie in view (drive_danger, danger_range=view: fleeing pays only once it is out of sight), a bite
    # and a sip (food and drink drives weighed as health's; late lives die of starvation 23-52%, thirst 8-17%).
    # Measured s0 / s1: -4.4 ± 4.1 / -2.2 ± 3.7; its learners chose DO less facing every kind, water and plants too
    "senses_body_control": [*SENSES, *AT_ONCE],
    # which of its parts lowers DO: senses_body_control with a reward of zero (no drive, no curiosity), so that only the
    # critic's own error and the other objectives move the learners (a control the reward's content must beat), and
    # with the reward not centred (agents.center_reward=false: a DO that pays less than the life's average pays less
    # than zero when centred). Measured silent s0: -6.1 ± 4.6, DO a little lower (0.03-0.06); uncentred: not run
    "senses_silent_control": [*SENSES, "agents.drive_health=0", "agents.drive_curiosity=0"],
    "senses_body_uncentred_control": [*SENSES, *AT_ONCE, "agents.center_reward=false"],
    # the silent learners lost too, and in senses_body_control the policy step where a kind is faced teaches DO up at
    # every kind: so which learner lowers DO, the readout or the network? Each alone under that reward: the readout
    # with the network's weights held as inherited (agents.learn_network=false), and the network with no readout.
    # Measured s0 / s1: the readout alone -3.2 ± 4.0 / -5.1 ± 4.2, DO lower at 4 / 3 kinds; the network alone
    # -0.6 ± 4.2 / +4.9 ± 4.3, DO moved both ways within 0.08
    "senses_body_readout_control": [*SENSES, *AT_ONCE, "agents.learn_network=false"],
    "body_network_control": ["agents.control_share=0.5", "agents.fast_readout=0", *AT_ONCE],
    # the readout alone lowered DO and the network alone did not: the senses' side weights are shared by the states
    # that face a kind and those that only have it beside. The readout on the kind faced alone (agents.fast_input=
    # facing), so that only a step facing a kind moves what is done facing it: under the body reward and the default's.
    # Measured s0 / s1: body -5.3 ± 4.5 / -4.4 ± 3.9, a faced zombie struck as often as the controls do; the default's
    # reward -8.6 ± 4.3 / -1.5 ± 4.4, its step where a zombie is faced teaching DO down on s0
    "facing_body_control": ["agents.control_share=0.5", "agents.fast_input=facing", "agents.fast_readout=1.0",
                            *AT_ONCE],
    "facing_control": ["agents.control_share=0.5", "agents.fast_input=facing", "agents.fast_readout=1.0"],
}
ARMS.update(LATEST)


def before(arm: str) -> list[str]:
    """The defaults an arm was measured on, as `--set`s on today's: none for LATEST (`default` among them), MEMORY for
    WITH_MEMORY, ADAM on top of it for CURRENT, OLD_DEFAULT on top of that for NOW, and BEFORE on top of that for the
    arms measured before then."""
    return ([] if arm in LATEST else MEMORY if arm in WITH_MEMORY else [*MEMORY, *ADAM] if arm in CURRENT
            else [*MEMORY, *ADAM, *OLD_DEFAULT] if arm in NOW else [*MEMORY, *ADAM, *OLD_DEFAULT, *BEFORE])


@functools.cache
def baseline(arm: str) -> str:
    """The arm that `arm` is measured against: random agents under the same world rules (world.* settings)."""
    def world(a):
        return config.to_dict(config.load(HERE.parent / "configs" / "default.yaml", [*before(a), *ARMS[a]]))["world"]
    return next(name for name, sets in ARMS.items() if "agents.kind=random" in sets and world(name) == world(arm))


def run(arm: str, seed: int, args) -> dict:
    """One (arm, seed): its lives and series, saved to OUT/<arm>-s<seed>.json (reused when present)."""
    cfg = config.load(args.config, ["run.progress=false", "run.snapshot=false", f"seed={seed}", *before(arm),
                                    *args.overrides, *ARMS[arm]])
    key = {"config": config.to_dict(cfg), "agent_steps": args.agent_steps}
    return ablations.cached(Path(args.out) / f"{arm}-s{seed}.json", key, args.fresh, None if args.saved_only else
                            lambda: dict(ablations.run_arm(cfg, args.agent_steps, f"{arm} s{seed}"), set=ARMS[arm]))


def report(r: dict, last: int) -> dict:
    """The last window's figures of one run, with its causes of death (shares in %)."""
    w = ablations.windows(r, last, last)["last"]
    n, steps = r["n_slots"], r["steps"]
    late = [x for x in r["lives"] if x["death_step"] > steps - last // n]
    causes = collections.Counter(x["cause"] for x in late)
    return {"lives": w["lives"], "mean_lifespan": round(w["mean_lifespan"], 2),
            "crafter_score": round(w["crafter_score"], 3), "achievements": w["rates"],  # % of lives
            "causes": {c: round(100 * k / max(len(late), 1), 1) for c, k in causes.most_common()},
            # where the lives pile up: the default's end at 370-400 steps, the length of a life that never drinks
            "lifespan_quartiles": [round(float(q), 1)
                                   for q in np.percentile([x["lifespan"] for x in late] or [0], [25, 50, 75])],
            "drives_end": r["series"][-1].get("drives") if r["series"] else None,
            "instinct_end": r["series"][-1].get("instinct") or None if r["series"] else None,
            "reflex_end": r["series"][-1].get("reflex") or None if r["series"] else None,
            "lifespan_by_fifth": ablations.by_fifth(r), **ablations.late_world(r, last), **in_run_control(r, late)}


IN_RUN_ACHIEVEMENTS = ("defeat_zombie", "collect_drink", "eat_cow", "eat_plant")


def in_run_control(r: dict, late: list) -> dict:
    """With agents.control_share > 0 (a share of newborns, by a hash of the agent id, learns nothing; with
    agents.control=drives, learns from the hand-set drives, not its inherited ones; with memory, carries none between
    steps: `lacks`), the late lives of the learners (the others) against the control's in the same run (one
    gene pool, one era, the same worlds): each group's lives, mean lifespan and Crafter score, the difference of mean lifespans with its standard error, and the same
    difference over the lives that end in the last 80% of the run (`last_80`: four times the lives, half the error),
    and the difference in each fifth of the run (`by_fifth`, by the step a life ended); over the last 80%, each group's
    causes of death and the share of its lives that reached each of `IN_RUN_ACHIEVEMENTS`."""
    share = r["key"]["config"]["agents"].get("control_share", 0.0)  # the config the run ran with, --set included
    if not share:
        return {}

    def split(lives):
        control = in_control(np.array([x["agent_id"] for x in lives]), share)
        return {"learners": [x for x, c in zip(lives, control) if not c], "control": [x for x, c in zip(lives, control) if c]}

    def difference(groups):
        spans = {g: np.array([x["lifespan"] for x in v], float) for g, v in groups.items()}
        se = np.sqrt(sum(x.var(ddof=1) / len(x) for x in spans.values()))
        return {"difference": round(float(spans["learners"].mean() - spans["control"].mean()), 1),
                "standard_error": round(float(se), 1)}

    groups = split(late)
    out = {g: {k: round(x, 3) for k, x in ablations.summarise(v, r["names"]).items() if k != "rates"}
           for g, v in groups.items()}
    last_80 = split([x for x in r["lives"] if x["death_step"] >= r["steps"] / 5])
    fifth = lambda x: min(5 * x["death_step"] // r["steps"], 4)  # noqa: E731 - the fifth of the run a life ended in
    fifths = [difference(split([x for x in r["lives"] if fifth(x) == f])) for f in range(5)]
    causes = {g: {c: round(100 * k / len(v), 1) for c, k in collections.Counter(x["cause"] for x in v).most_common()}
              for g, v in last_80.items()}  # where the learners' extra lives end, or are lost (% of each group)
    # what each group did with its lives (% of lives): a learner that learns to flee fights less
    did = {g: {a: ablations.summarise(v, r["names"])["rates"].get(a, 0.0) for a in IN_RUN_ACHIEVEMENTS}
           for g, v in last_80.items()}
    lacks = r["key"]["config"]["agents"].get("control", "learning")
    return {"in_run_control": dict(out, lacks=lacks, learning_over_control=round(out["learners"]["mean_lifespan"] /
                                                                     out["control"]["mean_lifespan"], 3),
                                   **difference(groups), last_80=dict(difference(last_80), causes=causes,
                                                                      achievements=did),
                                   by_fifth=[d["difference"] for d in fifths],
                                   by_fifth_se=[d["standard_error"] for d in fifths])}


def frontier(results: dict, path: Path, goal: float) -> None:
    """Each arm and seed as a point: its lifespan and Crafter score over random agents' on the same seed, under the
    same world rules (`baseline`). The
    issue's goal is the corner right of `goal` and above 1; the arms show where they trade one for the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = {}
    for name, r in results.items():
        arm, seed = name.rsplit("-s", 1)
        base = results.get(f"{baseline(arm)}-s{seed}")
        if baseline(arm) != arm and base:
            points.setdefault(arm, []).append((r["mean_lifespan"] / base["mean_lifespan"],
                                               r["crafter_score"] / base["crafter_score"], seed))
    if not points:
        return
    fig, ax = plt.subplots(figsize=(7.5, 6))
    ax.axvline(goal, color="grey", ls="--", lw=1)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    for arm, p in points.items():
        ax.scatter([x for x, _, _ in p], [y for _, y, _ in p], label=arm, s=40)
        for x, y, sd in p:
            ax.annotate(f"s{sd}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.plot([1], [1], "k*", ms=10, label="random agents")
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    x1, y1 = max(x1, goal + 0.1), max(y1, 1.1)
    ax.fill([goal, x1, x1, goal], [1, 1, y1, y1], color="tab:green", alpha=0.1, label="the goal")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("mean lifespan / random agents' (same seed, same world rules)")
    ax.set_ylabel("Crafter score / random agents' (same seed, same world rules)")
    ax.set_title(f"lifespan against breadth; the goal: right of {goal}x, above 1")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def in_run_arms(results: dict) -> dict:
    """{arm: [each of its seeds' `in_run_control`]} for the arms with an in-run control, in the order of `results`."""
    arms = collections.defaultdict(list)
    for name, r in results.items():
        if "in_run_control" in r:
            arms[name.rsplit("-s", 1)[0]].append(r["in_run_control"])
    return dict(arms)


def seeds_mean_se(standard_errors):
    """The standard error of a mean over independent seeds, from each seed's ([seeds] or [seeds, k])."""
    return np.sqrt(np.sum(np.square(standard_errors), axis=0)) / len(standard_errors)


def in_run(results: dict, path: Path) -> None:
    """Every arm and seed with an in-run control as a row: its learners' (the others') mean lifespan less its controls',
    over the lives ending in the last 80% of the run, with a 95% interval (1.96 standard errors). Right of zero, what
    the control lacks (learning, evolved drives, memory: `lacks`) pays.
    An arm run on several seeds also gets a row (red) of the seeds' mean, its standard error from theirs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((r["in_run_control"]["last_80"]["difference"], r["in_run_control"]["last_80"]["standard_error"], name)
                  for name, r in results.items() if "in_run_control" in r)
    if not rows:
        return
    # an arm run on several seeds also gets a row of their mean
    pooled = [(float(np.mean([c["last_80"]["difference"] for c in x])),
               float(seeds_mean_se([c["last_80"]["standard_error"] for c in x])), f"{arm}, mean of {len(x)} seeds")
              for arm, x in in_run_arms(results).items() if len(x) > 1]
    rows = sorted(pooled) + rows
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(rows)))
    y = np.arange(len(rows))
    for part, colour in ((slice(0, len(pooled)), "tab:red"), (slice(len(pooled), None), "tab:blue")):
        ax.errorbar([d for d, _, _ in rows[part]], y[part], xerr=[1.96 * e for _, e, _ in rows[part]], fmt="o",
                    color=colour, capsize=3)
    ax.axvline(0.0, color="grey", lw=1)
    ax.set_yticks(y, [n for _, _, n in rows], fontsize=8)
    ax.set_xlabel("the others' mean lifespan less their controls' (steps), last 80% of the run, 95% interval")
    ax.set_title("what each part adds against its in-run control: lifetime learning (*_control),\nevolved drives "
                 "over hand-set (*_drives_control), memory (*_memory_control)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def seeds_of(runs: dict) -> list:
    return sorted({seed for _, seed in runs})


def in_run_fifths(results: dict, path: Path) -> None:
    """Each arm with an in-run control, the difference (learners less controls; for agents.control=drives, evolved
    drives less hand-set ones) in each fifth of the run, by the step a life ended: each seed thin, the seeds' mean
    thick with a 95% interval (from the seeds' standard errors). Whether a gap grows as selection goes on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = in_run_arms(results)
    if not arms:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = np.arange(1, 6)
    for i, (arm, seeds) in enumerate(sorted(arms.items())):
        colour = f"C{i % 10}"
        for c in seeds:
            ax.plot(x, c["by_fifth"], color=colour, lw=0.8, alpha=0.45)
        mean = np.mean([c["by_fifth"] for c in seeds], axis=0)
        se = seeds_mean_se([c["by_fifth_se"] for c in seeds])
        ax.errorbar(x, mean, yerr=1.96 * se, color=colour, lw=2.2, capsize=3, marker="o",
                    label=f"{arm} ({seeds[0]['lacks']}), mean of {len(seeds)} seed{'s' * (len(seeds) > 1)}")
    ax.axhline(0.0, color="grey", lw=1)
    ax.set_xticks(x, ["1st", "2nd", "3rd", "4th", "5th"])
    ax.set_xlabel("fifth of the run (by the step a life ended)")
    ax.set_ylabel("mean lifespan less the control's (steps)")
    ax.set_title("the in-run control over the run: each seed thin, their mean with a 95% interval", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def homes(runs: dict, path: Path) -> None:
    """What each arm's population made of its homes over the run, one line per arm and seed: the mean lifespan of
    the lives ending in each chunk, the room a player can walk to (tiles within 8 steps) and the share of worlds
    where water lies in that room (`ContinuousWorld.history`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("lifespan_mean", "mean lifespan of the lives ending (steps)"), ("room", "room: tiles within 8 steps"),
              ("water_in_reach", "worlds with water in reach"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    # one colour per world (an arm and its random agents); random agents dashed, other arms solid, dash-dot, dotted
    worlds = list(dict.fromkeys(baseline(a) for a, _ in sorted(runs)))
    styles = {}
    for (arm, seed), r in sorted(runs.items()):
        mine = [a for a in dict.fromkeys(a for a, _ in sorted(runs)) if baseline(a) == baseline(arm) and a != baseline(a)]
        style = dict(color=f"C{worlds.index(baseline(arm)) * 2 + seeds_of(runs).index(seed)}",
                     ls="--" if arm == baseline(arm) else ("-", "-.", ":")[mine.index(arm) % 3])
        styles[(arm, seed)] = style
    for (arm, seed), r in sorted(runs.items()):
        points = [p for p in r["series"] if "room" in p.get("world", {})]
        if not points:
            continue
        x = [p["step"] * r["n_slots"] / 1e6 for p in points]
        for ax, (k, _) in zip(axes, panels):
            y = [p[k] if k == "lifespan_mean" else p["world"][k] for p in points]
            k = min(8, len(y))  # a trailing mean over 8 chunks
            y = np.convolve(np.nan_to_num(np.asarray(y, float)), np.ones(k) / k, mode="valid")
            ax.plot(x[k - 1:], y, label=f"{arm} s{seed}", lw=1.2, **styles[(arm, seed)])
    for ax, (_, title) in zip(axes, panels):
        ax.set_xlabel("million agent-steps")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def drive_weights(runs: dict, path: Path) -> None:
    """The living population's mean reward weight of each drive over the run, one line per arm and seed whose
    weights evolve (agents.drives evolved or offset; hand-set weights are flat and left out): which drives evolution
    turned up or down. Nothing is drawn when no arm's weights moved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    moving = {k: r for k, r in sorted(runs.items()) if r["series"] and "drives" in r["series"][0]
              and len({tuple(p["drives"].values()) for p in r["series"]}) > 1}
    if not moving:
        return
    names = list(next(iter(moving.values()))["series"][0]["drives"])
    fig, axes = plt.subplots(2, (len(names) + 1) // 2, figsize=(3.2 * ((len(names) + 1) // 2), 6.4), squeeze=False)
    for i, ((arm, seed), r) in enumerate(moving.items()):
        x = [p["step"] * r["n_slots"] / 1e6 for p in r["series"]]
        for ax, name in zip(axes.flat, names):
            ax.plot(x, [p["drives"][name] for p in r["series"]], color=f"C{i}", lw=1.2, label=f"{arm} s{seed}")
    for ax, name in zip(axes.flat, names):
        ax.set_title(name, fontsize=10)
        ax.axhline(0, color="grey", lw=0.5)
    for ax in axes[-1]:
        ax.set_xlabel("million agent-steps")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("population mean weight")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("drive weights over the run (the living population's mean)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def do_gap(results: dict, path: Path) -> None:
    """Per arm and seed with an in-run control of learning: left, P(DO) in front of each kind faced, learners less
    controls (last 20%); right, the drift of DO's logit that the learners' policy step makes where that kind is
    faced (`td_when_facing`). Where the two disagree in sign, what moves DO is not the step at that state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {name: r for name, r in results.items() if "td_when_facing" in r and "do_when_facing_by_half" in r}
    if not rows:
        return
    kinds = list(next(iter(rows.values()))["do_when_facing_by_half"]["learners"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.5 + 0.55 * len(rows)), sharey=True)
    y, width = np.arange(len(rows)), 0.8 / len(kinds)
    half = [r["do_when_facing_by_half"] for r in rows.values()]
    for i, kind in enumerate(kinds):
        gap = [h["learners"].get(kind, np.nan) - h["control"].get(kind, np.nan) for h in half]
        drift = [r["td_when_facing"].get(kind, {}).get("do_logit_drift", np.nan) for r in rows.values()]
        for ax, values in zip(axes, (gap, drift)):
            ax.barh(y + (i - (len(kinds) - 1) / 2) * width, values, height=width, color=f"C{i}", label=kind)
    for ax, label in zip(axes, ("P(DO | facing the kind), learners less controls",
                                "DO's logit drift per learned step there, p(1-p)(td_do - td_other)")):
        ax.axvline(0.0, color="grey", lw=1)
        ax.set_xlabel(label, fontsize=9)
    axes[0].set_yticks(y, list(rows), fontsize=8)
    axes[0].legend(fontsize=8, title="kind faced", title_fontsize=8)
    fig.suptitle("what the learners do where a kind is faced (left) and what their step there teaches (right), "
                 "last 20% of the run", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(HERE.parent / "configs" / "default.yaml"))
    p.add_argument("--agent-steps", type=int, default=1_000_000)
    p.add_argument("--arms", default="default,random", help=f"comma-separated, from {list(ARMS)}")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--goal", type=float, default=1.5, help="the goal arm's mean lifespan over random's, on every seed")
    p.add_argument("--goal-arm", default="default", help="the arm held to --goal: the default config (the full system "
                   "as shipped); `full` is the issue's evolved-drives arm")
    p.add_argument("--out", default=str(HERE.parent / "runs" / "survival"))
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--saved-only", action="store_true", help="run nothing: summarise the arms and seeds already saved")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if any(a not in ARMS for a in arms):
        p.error(f"unknown arm in {arms}; choose from {list(ARMS)}")
    arms += [b for b in dict.fromkeys(map(baseline, arms)) if b not in arms]  # each arm's random agents
    seeds = [int(s) for s in args.seeds.split(",")]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    last = args.agent_steps // 5  # the last 20% of the run

    runs = {(arm, seed): run(arm, seed, args) for arm in arms for seed in seeds}
    runs = {k: r for k, r in runs.items() if r is not None}  # --saved-only: what is saved
    if not runs:
        print(f"survival.py: nothing saved in {args.out} for arms {arms}, seeds {seeds}; run them without --saved-only")
        return 1
    results = {f"{arm}-s{seed}": report(r, last) for (arm, seed), r in runs.items()}
    ablations.plot({f"{a}-s{s}": dict(r, windows=ablations.windows(r, last, last)) for (a, s), r in runs.items()},
                   Path(args.out) / "survival.png", last)
    frontier(results, Path(args.out) / "frontier.png", args.goal)
    homes(runs, Path(args.out) / "homes.png")
    in_run(results, Path(args.out) / "in_run.png")
    in_run_fifths(results, Path(args.out) / "in_run_fifths.png")
    drive_weights(runs, Path(args.out) / "drives.png")
    do_gap(results, Path(args.out) / "do_gap.png")
    for name, r in results.items():
        print(f"{name:>16}: {r['lives']:>6} lives, mean lifespan {r['mean_lifespan']:>7.1f}, "
              f"Crafter score {r['crafter_score']:.3f} {r['achievements']}, causes {r['causes']}, by fifth of birth {r['lifespan_by_fifth']}, quartiles {r['lifespan_quartiles']}"
              + (f", shelter {r['shelter']}, room {r.get('room')}, water in reach {r.get('water_in_reach')}, "
                 f"actions {r['actions']}" if "shelter" in r else ""))
    # each arm over random agents in its own world rules (`baseline`)
    pairs = [(a, s) for a, s in runs if baseline(a) != a and f"{baseline(a)}-s{s}" in results]
    over = lambda field: {f"{a}-s{s}": round(results[f"{a}-s{s}"][field] / results[f"{baseline(a)}-s{s}"][field], 3)  # noqa: E731
                          for a, s in pairs}
    over_random, crafter_over_random = over("mean_lifespan"), over("crafter_score")
    ratios = {s: over_random[f"{args.goal_arm}-s{s}"] for s in seeds if f"{args.goal_arm}-s{s}" in over_random}
    met = all(x >= args.goal for x in ratios.values()) if ratios else None
    print(json.dumps({"arms": results, "over_random": over_random, "crafter_over_random": crafter_over_random,
                      "goal_arm": args.goal_arm,
                      "goal_over_random": {str(s): x for s, x in ratios.items()}, "goal": args.goal, "goal_met": met}))
    return 1 if met is False else 0


if __name__ == "__main__":
    sys.exit(main())

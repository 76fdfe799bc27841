"""What a player sees further off than the tiles beside it (`ContinuousWorld.neighbours`), as a
taxis would read it (agents.seek), whether a hostile mob is in view, as fear would (agents.drive_fear), and the
health left in the hostile mobs near it, as the danger drive would (agents.drive_danger)."""

from __future__ import annotations

import importlib

import jax.numpy as jnp


HOSTILE = ("melee", "ranged")  # the mobs that attack (zombies, skeletons)
ZOMBIE_HEALTH = 5.0  # a Craftax-Classic zombie's full health (a bare-handed strike takes 1): the unit of `danger`


def window(rows: int, cols: int):
    """[rows x cols, 2] the (row, col) offsets of a window centred on the player, row by row."""
    return jnp.stack(jnp.meshgrid(jnp.arange(rows) - rows // 2, jnp.arange(cols) - cols // 2, indexing="ij"),
                     -1).reshape(-1, 2)


def mobs_in_view(world, ws, role, health: bool = False):
    """([N, M, 2] offsets from the player, [N, M] a living mob in the observation's window) over the mobs
    whose role is in `role`, on the player's level; with `health`, their health [N, M] last."""
    vr, vc = world.spec.map_obs_shape[:2]
    mobs = world.mobs_on_level(ws, role, health)
    offs = [pos - ws.env.player_position[:, None, :] for pos, *_ in mobs]
    seen = [m[1] & (jnp.abs(o) <= jnp.asarray([vr // 2, vc // 2])).all(-1) for o, m in zip(offs, mobs)]
    out = (jnp.concatenate(offs, 1), jnp.concatenate(seen, 1))
    return out + (jnp.concatenate([m[2] for m in mobs], 1),) if health else out


def threat(world, ws):
    """[N] float32: 1 where a hostile mob (a zombie, a skeleton) is in the player's view, what fear reads
    (agents.drive_fear)."""
    return mobs_in_view(world, ws, HOSTILE)[1].any(-1).astype(jnp.float32)


def danger(world, ws, in_view: bool = False):
    """[N] float32 the health left in the hostile mobs beside each player (Manhattan distance 1: those that strike
    it) or, `in_view`, in its observation's window, in a zombie's full health (`ZOMBIE_HEALTH`): a strike at a
    zombie lowers it by 1/5 (agents.drive_danger, agents.danger_range). On the player's level."""
    off, seen, health = mobs_in_view(world, ws, HOSTILE, health=True)
    near = seen if in_view else seen & (jnp.abs(off).sum(-1) == 1)  # (the tiles beside lie in the window)
    return jnp.where(near, health, 0.0).sum(-1) / ZOMBIE_HEALTH


def in_view(world, ws):
    """Where the nearest of each kind lies in the player's view, as a taxis would read it: [N, 4, K]
    float32, 1 where the move LEFT, RIGHT, UP, DOWN (the move actions' order) leads toward the
    nearest one (Manhattan; ties by position in the view) of each of the world's `neighbour_kinds`
    two or more steps away (what lies beside is `ContinuousWorld.neighbours`'); both moves of a
    diagonal offset. On the player's level, within the observation's window (`spec.map_obs_shape`)."""
    blocks = importlib.import_module(world.spec.constants).BlockType
    vr, vc = world.spec.map_obs_shape[:2]
    view = window(vr, vc)  # [V, 2] the view's offsets from the player
    _, block, inside = world.tiles(ws, view)
    offsets = jnp.broadcast_to(view, block.shape + (2,))

    def toward(off, present):  # [N, 4] the moves toward the nearest present one two or more steps away
        dist = jnp.abs(off).sum(-1)
        ok = present & (dist >= 2)
        o = jnp.take_along_axis(off, jnp.argmin(jnp.where(ok, dist, 1 << 20), -1)[:, None, None], 1)[:, 0]
        return jnp.stack([o[:, 1] < 0, o[:, 1] > 0, o[:, 0] < 0, o[:, 0] > 0], -1) & ok.any(-1)[:, None]

    kinds = [toward(*mobs_in_view(world, ws, HOSTILE)), toward(*mobs_in_view(world, ws, ("passive",))),
             toward(offsets, inside & (block == blocks.WATER.value)),
             toward(offsets, inside & (block == blocks.RIPE_PLANT.value))]
    return jnp.stack(kinds, -1).astype(jnp.float32)


def room(world, ws, closed, radius: int = 8):
    """How far a player could walk from where it stands (niche construction: a hedge of plants walls a home
    in for good, since Craftax-Classic's plants cannot be removed): ([N] walkable tiles it can reach within
    `radius` steps, [N] 1 where one of them lies beside water, so it could drink). `closed` [blocks] bool:
    the blocks no one walks onto (solid blocks, lava); mobs are ignored (they move)."""
    blocks = importlib.import_module(world.spec.constants).BlockType
    side = 2 * radius + 1
    _, block, inside = world.tiles(ws, window(side, side))
    block, inside = block.reshape(-1, side, side), inside.reshape(-1, side, side)
    walkable = inside & ~closed[block]
    water = inside & (block == blocks.WATER.value)

    def beside(x):  # [N, side, side] tiles 4-adjacent to one where x holds
        p = jnp.pad(x, ((0, 0), (1, 1), (1, 1)))
        return p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:]

    reach = jnp.zeros_like(walkable).at[:, radius, radius].set(True)
    for _ in range(radius):
        reach = reach | (beside(reach) & walkable)
    return reach.sum((-2, -1)), (reach & beside(water)).any((-2, -1)).astype(jnp.int32)

"""What a player sees further off than the tiles beside it (`ContinuousWorld.neighbours`), as a
taxis would read it (agents.seek)."""

from __future__ import annotations

import importlib

import jax.numpy as jnp


def in_view(world, ws):
    """Where the nearest of each kind lies in the player's view, as a taxis would read it: [N, 4, K]
    float32, 1 where the move LEFT, RIGHT, UP, DOWN (the move actions' order) leads toward the
    nearest one (Manhattan; ties by position in the view) of each of the world's `neighbour_kinds`
    two or more steps away (what lies beside is `ContinuousWorld.neighbours`'); both moves of a
    diagonal offset. On the player's level, within the observation's window (`spec.map_obs_shape`)."""
    blocks = importlib.import_module(world.spec.constants).BlockType
    level = ws.env.player_level if world.spec.levels else None
    ground = ws.env.map[jnp.arange(world.n), level] if world.spec.levels else ws.env.map
    rows, cols = ground.shape[-2:]
    half = jnp.asarray(world.spec.map_obs_shape[:2]) // 2
    vr, vc = world.spec.map_obs_shape[:2]
    window = jnp.stack(jnp.meshgrid(jnp.arange(vr) - vr // 2, jnp.arange(vc) - vc // 2, indexing="ij"), -1)
    window = window.reshape(-1, 2)  # [V, 2] the view's offsets from the player
    cells = ws.env.player_position[:, None, :] + window
    inside = (cells[..., 0] >= 0) & (cells[..., 0] < rows) & (cells[..., 1] >= 0) & (cells[..., 1] < cols)
    block = ground[jnp.arange(world.n)[:, None], jnp.clip(cells[..., 0], 0, rows - 1),
                   jnp.clip(cells[..., 1], 0, cols - 1)]
    offsets = jnp.broadcast_to(window, cells.shape)

    def mobs_of(role):  # ([N, M, 2] offsets, [N, M] a living mob in view) over the mobs of this role
        offs, seen = [], []
        for name, kind in world.spec.mobs:
            if kind in role:
                m = getattr(ws.env, name)
                pos, mask = m.position, m.mask
                if world.spec.levels:
                    pos, mask = pos[jnp.arange(world.n), level], mask[jnp.arange(world.n), level]
                off = pos - ws.env.player_position[:, None, :]
                offs.append(off)
                seen.append(mask & (jnp.abs(off) <= half).all(-1))
        return jnp.concatenate(offs, 1), jnp.concatenate(seen, 1)

    def toward(off, present):  # [N, 4] the moves toward the nearest present one two or more steps away
        dist = jnp.abs(off).sum(-1)
        ok = present & (dist >= 2)
        o = jnp.take_along_axis(off, jnp.argmin(jnp.where(ok, dist, 1 << 20), -1)[:, None, None], 1)[:, 0]
        return jnp.stack([o[:, 1] < 0, o[:, 1] > 0, o[:, 0] < 0, o[:, 0] > 0], -1) & ok.any(-1)[:, None]

    kinds = [toward(*mobs_of(("melee", "ranged"))), toward(*mobs_of(("passive",))),
             toward(offsets, inside & (block == blocks.WATER.value)),
             toward(offsets, inside & (block == blocks.RIPE_PLANT.value))]
    return jnp.stack(kinds, -1).astype(jnp.float32)

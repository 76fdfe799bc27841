"""Drawing the viewer's frame: pure functions of (snapshot, UI state) -> image.

Nothing here owns a window or reads events (app.py does); a frame is drawn on an
off-screen pygame Surface, so the same code makes the live window and `--screenshot`.

* The worlds are drawn by Craftax's own pixel renderer (the agent's local view with mobs,
  inventory and day/night), jitted and vmapped once over the shown slots at 16 px per
  block, then scaled with pygame.
* The whole map of one world (key M) has no Craftax renderer: a numpy colour palette
  (the mean colour of each block texture) over `state.map`, with mobs and the player on top.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import numpy as np
import pygame

from evodevo.viewer.draw import (  # noqa: F401 - the palette and sizes, used through this module too
    ACCENT, BG, BLOCK_PX, DIM, FG, HEADER_H, MAX_STAT, MIN_SIZE, MOB_COLOURS, OK, PANEL_BG, PANEL_W, SIZE, STATS, WARN,
    Fonts, bar, surface, text)
from evodevo.viewer.panels import draw_agent_panel, draw_pool_panel
from evodevo.viewer.snapshot import Snapshot, SnapshotError
from evodevo.viewer.ui import HELP, UI, ages, grid_shape

# --------------------------------------------------------------------------- static assets


@functools.lru_cache(maxsize=None)
def _pixel_renderer(module: str, block_px: int):
    """Craftax's pixel renderer, vmapped over slots and jitted once per process."""
    import importlib

    make = importlib.import_module(module).make_craftax_pixel_renderer
    return jax.jit(jax.vmap(make(block_px)))


class Assets:
    """What drawing needs that does not change during a run: the jitted Craftax renderer,
    the EnvState template, the palette, names, fonts. Memoises the last snapshot's tiles."""

    def __init__(self, env_name: str, fonts: Fonts | None = None, block_px: int = BLOCK_PX):
        import importlib

        from evodevo.config import WorldConfig
        from evodevo.world.craftax_world import ENVS, ContinuousWorld

        if env_name not in ENVS:
            raise SnapshotError(f"the viewer cannot draw env '{env_name}'")
        self.env_name = env_name
        self.fonts = fonts or Fonts()
        world = ContinuousWorld(WorldConfig(env=env_name, n_slots=1))
        self.spec = world.spec  # renderer and constants modules, mobs, levels
        template = jax.eval_shape(world.env.reset_env, jax.random.PRNGKey(0), world.params)[1]
        flat, self.treedef = jax.tree_util.tree_flatten_with_path(template)
        self.leaves = [(jax.tree_util.keystr(p), np.dtype(x.dtype), tuple(x.shape)) for p, x in flat]
        self.achievements = list(world.achievement_names)
        consts = importlib.import_module(self.spec.constants)
        self.actions = [a.name.lower() for a in consts.Action]
        textures = consts.load_all_textures()[block_px]
        blocks = np.asarray(textures["block_textures"], np.float32)[..., :3]
        self.palette = blocks.mean(axis=(1, 2)).clip(0, 255).astype(np.uint8)
        self._render = _pixel_renderer(self.spec.renderer, block_px)
        self._memo = (None, None)

    def env_state(self, snap: Snapshot):
        """The batched Craftax EnvState of the shown slots (numpy leaves, template dtypes)."""
        leaves = []
        for path, dtype, shape in self.leaves:
            x = snap.env.get(path)
            if x is None or tuple(x.shape[1:]) != shape:
                got = None if x is None else tuple(x.shape[1:])
                raise SnapshotError(f"snapshot field {path} is {got}, the {self.env_name} renderer needs {shape}")
            leaves.append(x.astype(dtype, copy=False))
        return jax.tree.unflatten(self.treedef, leaves)

    def tiles(self, snap: Snapshot) -> np.ndarray:
        """uint8 [K, h, w, 3]: Craftax's own rendering of every shown slot (memoised per snapshot)."""
        if self._memo[0] is not snap:
            px = np.asarray(self._render(self.env_state(snap)))
            self._memo = (snap, px.clip(0, 255).astype(np.uint8))
        return self._memo[1]


# --------------------------------------------------------------------------- pure images


def world_map(assets: Assets, snap: Snapshot, slot: int, cell: int = 8) -> np.ndarray:
    """uint8 [H*cell, W*cell, 3]: the whole map of one slot's world, mobs and the player on top."""
    env = snap.env
    level = int(env[".player_level"][slot]) if assets.spec.levels else None
    grid = env[".map"][slot]
    if level is not None:
        grid = grid[level]
    img = assets.palette[np.clip(grid.astype(np.int64), 0, len(assets.palette) - 1)]
    img = img.repeat(cell, axis=0).repeat(cell, axis=1)
    inset = max(1, cell // 4)

    def mark(r, c, colour, pad):
        img[r * cell + pad:(r + 1) * cell - pad, c * cell + pad:(c + 1) * cell - pad] = colour

    for name, role in assets.spec.mobs:
        colour = MOB_COLOURS[role]
        pos, mask = env.get(f".{name}.position"), env.get(f".{name}.mask")
        if pos is None or mask is None:
            continue
        pos, mask = pos[slot], mask[slot]
        if level is not None:
            pos, mask = pos[level], mask[level]
        for (r, c) in pos[mask.astype(bool)].reshape(-1, 2).astype(np.int64):
            if 0 <= r < grid.shape[0] and 0 <= c < grid.shape[1]:
                mark(r, c, colour, inset)
    r, c = env[".player_position"][slot].astype(np.int64)
    mark(r, c, (0, 0, 0), 0)
    mark(r, c, (255, 0, 255), max(1, cell // 8))
    return img


# --------------------------------------------------------------------------- frame parts


def grid_layout(k: int, area: tuple[int, int, int, int], tile_hw: tuple[int, int], label_h: int):
    """Rects (x, y, w, h) of the cell of each of `k` tiles, and the image rect inside each."""
    ax, ay, aw, ah = area
    rows, cols = grid_shape(k)
    cw, ch = aw // cols, ah // rows
    th, tw = tile_hw
    scale = max(0.1, min((cw - 6) / tw, (ch - label_h - 6) / th))
    iw, ih = int(tw * scale), int(th * scale)
    cells, images = [], []
    for i in range(k):
        r, c = divmod(i, cols)
        x, y = ax + c * cw, ay + r * ch
        cells.append((x, y, cw, ch))
        images.append((x + (cw - iw) // 2, y + label_h + 3, iw, ih))
    return cells, images


def _label_h(k: int, area_h: int) -> int:
    rows, _ = grid_shape(k)
    return 16 if area_h // rows < 150 else 20


def draw_grid(surf, assets: Assets, snap: Snapshot, ui: UI, area):
    k = snap.n_shown
    tiles = assets.tiles(snap)
    label_h = _label_h(k, area[3])
    cells, images = grid_layout(k, area, tiles.shape[1:3], label_h)
    font = assets.fonts(label_h)
    age = ages(snap)
    ids = snap.slots["agent_id"]
    for i in range(k):
        x, y, w, h = images[i]
        cx, cy, cw, ch = cells[i]
        img = pygame.transform.scale(surface(tiles[i]), (w, h))
        surf.blit(img, (x, y))
        # label: id and age on the left, four stat bars on the right
        bars_w = max(20, min(70, w // 3))
        text(surf, font, f"#{ids[i]}  {age[i]:,}", (x, cy + 2), FG, w - bars_w - 4)
        bh = max(2, (label_h - 4) // 4)
        for j, (field, colour) in enumerate(STATS):
            v = float(snap.env[f".{field}"][i]) / MAX_STAT
            bar(surf, (x + w - bars_w, cy + 2 + j * bh, bars_w, bh - 1), v, colour)
        if i == ui.selected:
            pygame.draw.rect(surf, ACCENT, (x - 3, cy, w + 6, h + label_h + 6), 3)


def draw_map(surf, assets: Assets, snap: Snapshot, ui: UI, area):
    ax, ay, aw, ah = area
    slot = ui.selected
    font = assets.fonts(20)
    title = (f"world of agent #{snap.slots['agent_id'][slot]} (slot {slot}) · "
             f"M: back to the grid · magenta: agent, red: hostile, white: cow")
    text(surf, font, title, (ax + 8, ay + 4), FG, aw - 16)
    img = world_map(assets, snap, slot, cell=1)
    mh, mw = img.shape[:2]
    cell = max(1, min((aw - 16) // mw, (ah - 34) // mh))
    img = world_map(assets, snap, slot, cell=cell)
    x, y = ax + (aw - img.shape[1]) // 2, ay + 28
    surf.blit(surface(img), (x, y))
    # the agent's local view (Craftax OBS_DIM: rows x cols around the player)
    tile_h, tile_w = assets.tiles(snap).shape[1:3]
    view_cols = tile_w // BLOCK_PX
    inv_rows = 2 if not assets.spec.levels else 4
    view_rows = tile_h // BLOCK_PX - inv_rows
    r, c = snap.env[".player_position"][slot].astype(int)
    rect = (x + (c - view_cols // 2) * cell, y + (r - view_rows // 2) * cell, view_cols * cell, view_rows * cell)
    pygame.draw.rect(surf, (255, 255, 255), rect, 2)


@dataclass(frozen=True)
class Status:
    """What the header says about where the frame comes from (not part of the snapshot)."""

    run_name: str
    now: float  # wall-clock time the frame is drawn
    note: str = ""  # e.g. "run restarted", "screenshot saved"


def draw_header(surf, assets_fonts: Fonts, snap: Snapshot | None, ui: UI, status: Status):
    w = surf.get_width()
    pygame.draw.rect(surf, (10, 10, 14), (0, 0, w, HEADER_H))
    font = assets_fonts(22)
    title = font.render(f"Evo Devo Nano · {status.run_name}", True, FG)
    surf.blit(title, (10, 6))
    x = 10 + title.get_width()
    parts = []
    if snap is not None:
        parts.append((f"step {snap.step:,}", FG))
        if snap.meta.get("checkpoint") is not None:
            parts.append((f"checkpoint {snap.meta['checkpoint']:,}", ACCENT))
        else:
            age = max(0.0, status.now - float(snap.meta.get("time", status.now)))
            stale = age > max(10.0, 5 * float(snap.meta.get("every_s", 1.0)))
            parts.append((f"live · {age:.0f} s ago" + (" · no update: run stopped?" if stale else ""),
                          WARN if stale else OK))
    if ui.paused:
        parts.append(("PAUSED", WARN))
    if ui.follow:
        parts.append(("FOLLOW fittest", OK))
    note = ui.message or status.note
    if note:
        parts.append((note, ACCENT))
    x += 20
    for s, colour in parts:
        img = font.render(s, True, colour)
        if x + img.get_width() > w - 80:
            break
        surf.blit(img, (x, 6))
        x += img.get_width() + 22
    text(surf, font, "H: help", (w - 72, 6), DIM)


def draw_help(surf, fonts: Fonts):
    w, h = surf.get_size()
    bw, bh = 620, 60 + 28 * len(HELP)
    box = pygame.Surface((bw, bh), pygame.SRCALPHA)
    box.fill((0, 0, 0, 215))
    surf.blit(box, ((w - bw) // 2, (h - bh) // 2))
    x, y = (w - bw) // 2 + 24, (h - bh) // 2 + 16
    text(surf, fonts(26), "Keys", (x, y), ACCENT)
    y += 34
    for key, what in HELP:
        text(surf, fonts(22), key, (x, y), FG)
        text(surf, fonts(22), what, (x + 150, y), DIM, bw - 180)
        y += 28


# --------------------------------------------------------------------------- the frame


def layout(size) -> dict:
    w, h = max(size[0], MIN_SIZE[0]), max(size[1], MIN_SIZE[1])
    return {
        "size": (w, h),
        "grid": (0, HEADER_H, w - PANEL_W, h - HEADER_H),
        "panel": (w - PANEL_W, HEADER_H, PANEL_W, h - HEADER_H),
    }


def draw_frame(assets: Assets, snap: Snapshot, ui: UI, status: Status, size=SIZE) -> pygame.Surface:
    """The whole frame for (snapshot, UI state): grid or map, agent panel, pool panel, header."""
    lay = layout(size)
    surf = pygame.Surface(lay["size"])
    surf.fill(BG)
    if ui.show_map:
        draw_map(surf, assets, snap, ui, lay["grid"])
    else:
        draw_grid(surf, assets, snap, ui, lay["grid"])
    px, py, pw, ph = lay["panel"]
    pygame.draw.rect(surf, PANEL_BG, lay["panel"])
    y = draw_agent_panel(surf, assets, snap, ui, (px, py + 8, pw, ph))
    pygame.draw.line(surf, (60, 60, 75), (px + 8, y + 8), (px + pw - 8, y + 8))
    draw_pool_panel(surf, assets, snap, (px, y + 16, pw, py + ph - y - 16))
    draw_header(surf, assets.fonts, snap, ui, status)
    if ui.help:
        draw_help(surf, assets.fonts)
    return surf


def draw_waiting(fonts: Fonts, lines: list[str], ui: UI, status: Status, size=SIZE) -> pygame.Surface:
    """A frame for when there is nothing to show yet."""
    lay = layout(size)
    surf = pygame.Surface(lay["size"])
    surf.fill(BG)
    draw_header(surf, fonts, None, ui, status)
    y = lay["size"][1] // 2 - 20 * len(lines)
    for i, line in enumerate(lines):
        font = fonts(30 if i == 0 else 22)
        img = font.render(line, True, FG if i == 0 else DIM)
        surf.blit(img, ((lay["size"][0] - img.get_width()) // 2, y))
        y += img.get_height() + 10
    if ui.help:
        draw_help(surf, fonts)
    return surf


def tile_at(assets: Assets, snap: Snapshot, size, pos) -> int | None:
    """The shown slot whose grid tile is under the window position `pos`, if any."""
    area = layout(size)["grid"]
    k = snap.n_shown
    cells, _ = grid_layout(k, area, assets.tiles(snap).shape[1:3], _label_h(k, area[3]))
    for i, (x, y, w, h) in enumerate(cells):
        if x <= pos[0] < x + w and y <= pos[1] < y + h:
            return i
    return None


def frame_array(surf: pygame.Surface) -> np.ndarray:
    """uint8 [H, W, 3] copy of a frame (tests, screenshots)."""
    return pygame.surfarray.array3d(surf).transpose(1, 0, 2).copy()


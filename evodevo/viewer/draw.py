"""The viewer's drawing primitives and palette: text, bars, sparklines, lineage colours (pygame).

Shared by render.py (the frame) and panels.py (the agent and population panels).
"""

from __future__ import annotations

import colorsys

import numpy as np
import pygame

BLOCK_PX = 16  # Craftax pixel renderer block size (textures exist for 7, 16 and 64 / 10, 16 and 64)
SIZE = (1280, 800)  # default frame size
MIN_SIZE = (960, 600)
HEADER_H = 30
PANEL_W = 470  # right-hand panels

BG = (18, 18, 24)
PANEL_BG = (28, 28, 38)
FG = (230, 230, 235)
DIM = (150, 150, 165)
ACCENT = (255, 210, 60)
WARN = (255, 150, 60)
OK = (110, 220, 120)
STATS = (  # tile bars: (EnvState field, colour)
    ("player_health", (230, 60, 60)),
    ("player_food", (240, 150, 50)),
    ("player_drink", (70, 150, 240)),
    ("player_energy", (240, 220, 60)),
)
MAX_STAT = 9.0


# Whole-map colour of a mob by its role in the env's table (craftax_world.EnvSpec.mobs).
MOB_COLOURS = {"passive": (250, 250, 250), "melee": (235, 40, 40), "ranged": (190, 190, 200),
               "projectile": (255, 160, 0)}


class Fonts:
    """pygame fonts (pygame's default font works without a display)."""

    def __init__(self):
        pygame.font.init()
        self._cache: dict[int, pygame.font.Font] = {}

    def __call__(self, size: int) -> pygame.font.Font:
        if size not in self._cache:
            self._cache[size] = pygame.font.Font(None, size)
        return self._cache[size]


def surface(rgb: np.ndarray) -> pygame.Surface:
    return pygame.surfarray.make_surface(np.ascontiguousarray(rgb.transpose(1, 0, 2)))


def lineage_colour(gene_id: int, parents: dict) -> tuple[int, int, int]:
    """A colour per gene: the hue is its lineage root's, the shade darkens with generations."""
    root, depth = int(gene_id), 0
    while parents.get(root, -1) >= 0 and depth < 64:
        root, depth = int(parents[root]), depth + 1
    hue = (root * 0.6180339887) % 1.0
    value = max(0.45, 0.95 - 0.1 * depth)
    r, g, b = colorsys.hsv_to_rgb(hue, 0.6, value)
    return int(r * 255), int(g * 255), int(b * 255)


def gene_parents(pool: dict) -> dict:
    """{gene id: parent id} from whatever the pool summary lists (top genes, splits, lineage)."""
    parents = {}
    lineage = pool.get("lineage")
    if isinstance(lineage, dict):
        for k, v in lineage.items():
            try:
                parents[int(k)] = int(v)
            except (TypeError, ValueError):
                pass
    for value in pool.values():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and "id" in item and "parent" in item:
                    try:
                        parents[int(item["id"])] = int(item["parent"] if item["parent"] is not None else -1)
                    except (TypeError, ValueError):
                        pass
    return parents


def fit(font, s: str, width: int) -> str:
    if font.size(s)[0] <= width:
        return s
    while s and font.size(s + "…")[0] > width:
        s = s[:-1]
    return s + "…"


def text(surf, font, s, pos, colour=FG, width=None) -> int:
    """Draw one line; return its height."""
    if width is not None:
        s = fit(font, s, width)
    img = font.render(s, True, colour)
    surf.blit(img, pos)
    return img.get_height()


def wrap(font, s: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in s.split(" "):
        trial = f"{line} {word}" if line else word
        if font.size(trial)[0] <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def paragraph(surf, font, s, x, y, width, colour=FG, max_lines=3) -> int:
    lines = wrap(font, s, width)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = fit(font, lines[-1] + " …", width)
    for line in lines:
        y += text(surf, font, line, (x, y), colour, width)
    return y


def bar(surf, rect, frac, colour):
    pygame.draw.rect(surf, (50, 50, 60), rect)
    w = int(round(rect[2] * float(np.clip(frac, 0.0, 1.0))))
    if w > 0:
        pygame.draw.rect(surf, colour, (rect[0], rect[1], w, rect[3]))


def sparkline_stats(values) -> str:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "no data yet"
    return f"last {v[-1]:.3g} · min {v.min():.3g} · max {v.max():.3g} · {len(v)} steps"


def sparkline(surf, rect, values, colour=OK):
    x, y, w, h = rect
    pygame.draw.rect(surf, (40, 40, 52), rect)
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else 1.0
    xs = x + np.linspace(0, w - 1, len(v))
    ys = y + h - 2 - (v - lo) / span * (h - 4)
    pygame.draw.lines(surf, colour, False, list(zip(xs.tolist(), ys.tolist())), 1)

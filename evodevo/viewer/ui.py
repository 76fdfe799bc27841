"""The viewer's UI state and its key bindings: pure functions, no pygame.

The pygame window (app.py) turns events into key names and asks `on_key` for the next
`UI`; everything the frame shows follows from (snapshot, UI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

HELP = (
    ("arrows / Tab", "choose an agent (Shift+Tab: previous); click a tile"),
    ("F", "follow the fittest agent (on/off)"),
    ("P", "pause the display (the run goes on)"),
    ("M", "whole map of the selected agent's world (on/off)"),
    ("S", "save a PNG screenshot"),
    ("H", "this help (on/off)"),
    ("Q / Esc", "quit"),
)


@dataclass(frozen=True)
class UI:
    selected: int = 0  # index among the shown slots
    follow: bool = False  # select the fittest agent at every new snapshot
    paused: bool = False  # keep showing the current snapshot
    help: bool = False  # help overlay
    show_map: bool = False  # whole map of the selected agent's world instead of the grid
    message: str = ""  # transient status line (screenshot saved, run restarted, ...)


def grid_shape(k: int) -> tuple[int, int]:
    """(rows, cols) of the grid of `k` tiles: as square as possible."""
    cols = max(1, math.ceil(math.sqrt(k)))
    return math.ceil(k / cols), cols


def on_key(ui: UI, key: str, k: int, shift: bool = False) -> tuple[UI, str | None]:
    """Next UI state for a key press among `k` shown slots, and a command for the window.

    `key` is a lower-case name (pygame.key.name): "left", "tab", "f", ... Commands:
    "quit", "screenshot", or None.
    """
    rows, cols = grid_shape(max(k, 1))
    moves = {"left": -1, "right": 1, "up": -cols, "down": cols, "tab": -1 if shift else 1}
    if key in moves and k > 0:
        step = moves[key]
        if key in ("up", "down"):
            target = ui.selected + step
            sel = target if 0 <= target < k else ui.selected
        else:
            sel = (ui.selected + step) % k
        return replace(ui, selected=sel, follow=False), None
    if key in ("q", "escape"):
        return ui, "quit"
    if key == "s":
        return ui, "screenshot"
    if key == "f":
        return replace(ui, follow=not ui.follow), None
    if key == "p":
        return replace(ui, paused=not ui.paused), None
    if key == "h":
        return replace(ui, help=not ui.help), None
    if key == "m":
        return replace(ui, show_map=not ui.show_map), None
    return ui, None


def fitness(snap) -> np.ndarray:
    """Per shown slot fitness used by "follow the fittest": the lifetime fitness so far that the
    run stores with the genome (`Simulation.genome_arrays`), or the age for agents without one
    (random agents: survival is all there is)."""
    if "fitness" in snap.genome:
        return np.asarray(snap.genome["fitness"], np.float64)
    return ages(snap).astype(np.float64)


def ages(snap) -> np.ndarray:
    return snap.step - np.asarray(snap.slots["birth_step"], np.int64)


def on_snapshot(ui: UI, snap) -> UI:
    """UI after a new snapshot arrived: keep the selection in range, follow the fittest."""
    k = snap.n_shown
    sel = min(ui.selected, max(k - 1, 0))
    if ui.follow and k:
        sel = int(np.argmax(fitness(snap)))
    return replace(ui, selected=sel)

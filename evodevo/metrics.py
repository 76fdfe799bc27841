"""Statistics over finished lives (host side, numpy)."""

from __future__ import annotations

from collections import deque

import numpy as np


def crafter_score(success_rates_percent) -> float:
    """Crafter benchmark score: exp(mean_i ln(1 + s_i)) - 1, s_i in percent, a life as the episode."""
    s = np.asarray(success_rates_percent, dtype=np.float64)
    return float(np.exp(np.mean(np.log1p(s))) - 1.0)


def unpack_bits(words, n: int) -> np.ndarray:
    """uint32[..., W] -> bool[..., n] (inverse of sim.pack_bits)."""
    words = np.asarray(words, dtype=np.uint32)
    bits = (words[..., :, None] >> np.arange(32, dtype=np.uint32)) & 1
    return bits.reshape(words.shape[:-1] + (-1,))[..., :n].astype(bool)


class RecentLives:
    """A window of the most recent finished lives: lifespans and achievement flags."""

    def __init__(self, window: int, achievement_names):
        self.names = list(achievement_names)
        self.lifespans: deque[int] = deque(maxlen=window)
        self.achieved: deque[np.ndarray] = deque(maxlen=window)

    def add(self, lifespan: int, achievements: list[str]) -> None:
        flags = np.zeros(len(self.names), bool)
        flags[[self.names.index(a) for a in achievements]] = True
        self.lifespans.append(int(lifespan))
        self.achieved.append(flags)

    def __len__(self) -> int:
        return len(self.lifespans)

    def summary(self) -> dict:
        """Mean/median lifespan, per-achievement success rate (%), Crafter score; {} when empty."""
        if not self.lifespans:
            return {}
        rates = 100.0 * np.mean(np.stack(self.achieved), axis=0)
        return {
            "lifespan_mean": float(np.mean(self.lifespans)),
            "lifespan_median": float(np.median(self.lifespans)),
            "crafter_score": crafter_score(rates),
            "achievement_rates": dict(zip(self.names, rates.tolist())),
        }

"""Running statistics for streaming normalisation (stream-x recipe), pure functions."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Welford:
    count: jnp.ndarray  # float32 scalar (or batch)
    mean: jnp.ndarray
    m2: jnp.ndarray

    @classmethod
    def zeros(cls, shape=()) -> "Welford":
        return cls(count=jnp.zeros(()), mean=jnp.zeros(shape), m2=jnp.zeros(shape))

    def update(self, x) -> "Welford":
        count = self.count + 1.0
        delta = x - self.mean
        mean = self.mean + delta / count
        return Welford(count=count, mean=mean, m2=self.m2 + delta * (x - mean))

    @property
    def var(self):
        """Sample variance; 1 until two samples are seen (so early inputs pass unscaled)."""
        return jnp.where(self.count >= 2.0, self.m2 / jnp.maximum(self.count - 1.0, 1.0), 1.0)


def normalize(stats: Welford, x, clip: float, eps: float = 1e-8):
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + eps), -clip, clip)


def observe(stats: Welford, x, clip: float, on: bool):
    """The running statistics with observation `x` added, and what the encoder reads: `x` normalised by them
    (`on`), or `x` itself (Craftax's own scale, the same in every life; the statistics are kept either way)."""
    stats = stats.update(x)
    return stats, normalize(stats, x, clip) if on else x


@struct.dataclass
class RewardScale:
    """Scales rewards by the running std of the discounted return (stream-x ScaleReward); with `center`,
    first subtracts the running average reward (reward centering, Naik et al. 2024)."""

    ret: jnp.ndarray  # running discounted return u (of the centered reward with `center`)
    stats: Welford
    rate: Welford  # the raw rewards seen so far: their mean is the average reward

    @classmethod
    def zeros(cls) -> "RewardScale":
        return cls(ret=jnp.zeros(()), stats=Welford.zeros(), rate=Welford.zeros())

    def update(self, r, terminal, gamma: float, center: bool = False) -> "RewardScale":
        rate = self.rate.update(r)
        ret = gamma * self.ret * (1.0 - terminal) + (r - rate.mean if center else r)
        return RewardScale(ret=ret, stats=self.stats.update(ret), rate=rate)

    def scale(self, r, center: bool = False, eps: float = 1e-8):
        return (r - self.rate.mean if center else r) / jnp.sqrt(self.stats.var + eps)

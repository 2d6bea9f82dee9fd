"""How an ensemble combines its members' answers, the same for /v1 and v2: forecasts by their
weighted mean, classifiers by the weighted mean of their class probabilities (a soft vote),
whose largest gives the label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def weights_of(weights: Sequence[float]) -> np.ndarray:
    """The members' weights, scaled to add up to 1."""
    array = np.asarray(weights, dtype=np.float64)
    return array / array.sum()


def weighted_mean(values: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The members' arrays (all of one shape), averaged with their weights."""
    scaled = weights_of(weights)
    return np.sum([w * np.asarray(v, dtype=np.float64) for w, v in zip(scaled, values, strict=True)], axis=0)


def soft_vote(probabilities: Sequence[np.ndarray], weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Labels (the index of the largest mean probability, per row) and the mean probabilities."""
    mean = weighted_mean(probabilities, weights)
    return mean.argmax(axis=-1).astype(np.int64), mean

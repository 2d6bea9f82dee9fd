"""An ensemble as a runtime: every member runs on the same tensors, and their outputs combine.

Forecasters' outputs combine by their weighted mean; classifiers' `probabilities` by the
weighted mean too (a soft vote), whose largest gives `label`. The members are the versions
the request's routing chose for each (registry.py), so every protocol combines the same ones.
Combined values stay float64: a protocol encodes them in its own datatypes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prediction_service.errors import IntegrityError
from prediction_service.runtime.base import Feeds, Member, Runtime, describe


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


class Ensemble(Runtime):
    """Its first member's inputs and outputs; members whose graphs take or give other tensors
    are refused (IntegrityError: the manifest is wrong, not the request)."""

    LABEL = "label"
    PROBABILITIES = "probabilities"

    def __init__(self, members: Sequence[Member], *, classifier: bool) -> None:
        first = members[0].runtime
        for member in members[1:]:
            if (member.runtime.inputs, member.runtime.outputs) != (first.inputs, first.outputs):
                raise IntegrityError(f"its members' graphs take or give different tensors: {describe(first.inputs)} "
                                     f"against {describe(member.runtime.inputs)}")
        self.inputs, self.outputs = first.inputs, first.outputs
        self._members = tuple(members)
        self._classifier = classifier

    @property
    def members(self) -> Sequence[Member]:
        return self._members

    def run(self, output_names: Sequence[str], feeds: Feeds) -> list[np.ndarray]:
        return self._combine(output_names, self._answers(feeds))

    def run_with_members(self, output_names: Sequence[str], feeds: Feeds) -> tuple[list[np.ndarray],
                                                                                  list[list[np.ndarray]]]:
        answers = self._answers(feeds)
        own = [[answer[name] for name in output_names] for answer in answers]
        return self._combine(output_names, answers), own

    def _combine(self, output_names: Sequence[str], answers: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """The members' outputs (every output of each, by name) combined into `output_names`."""
        weights = [m.weight for m in self._members]
        if self._classifier:
            labels, probabilities = soft_vote([a[self.PROBABILITIES] for a in answers], weights)
            combined = {self.LABEL: labels, self.PROBABILITIES: probabilities}
            return [combined[name] for name in output_names]
        return [weighted_mean([a[name] for a in answers], weights) for name in output_names]

    def _answers(self, feeds: Feeds) -> list[dict[str, np.ndarray]]:
        names = [o.name for o in self.outputs]
        return [dict(zip(names, m.runtime.run(names, feeds), strict=True)) for m in self._members]

"""Draw evenly: a shuffled deck dealt card by card and reshuffled when it runs out.

Every card comes up once per round, so even a small split covers every template and every outcome.
"""

import random
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Deck(Generic[T]):
    def __init__(self, rng: random.Random, cards: Sequence[T]) -> None:
        if not cards:
            raise ValueError("a deck needs at least one card")
        self._rng = rng
        self._cards = list(cards)
        self._pile: list[T] = []

    def draw(self) -> T:
        if not self._pile:
            self._pile = list(self._cards)
            self._rng.shuffle(self._pile)
        return self._pile.pop()

"""Site names: gazetteer entries, and names composed on the fly that are each used only once.

Names are split in two parts that never meet: held-out names (listed as such in the gazetteer, or composed
from a stem that hashes into the held-out part) make test_unseen, the others every other split.
"""

import random
import zlib
from dataclasses import dataclass
from typing import Literal

from training_data import load
from training_data.deck import Deck

Source = Literal["gazetteer", "composed"]
NameKind = Literal["facility", "area", "bare"]


@dataclass(frozen=True)
class Site:
    name: str
    source: Source

    @property
    def canonical(self) -> str:
        """The name the work-order database knows: a place name that is not a facility gets 工地."""
        return self.name if name_kind(self.name) == "facility" else f"{self.name}工地"


def name_kind(name: str) -> NameKind:
    """A facility (substation, line section, project), an area (district, town, village) or a bare place."""
    words = load("sites")["place_words"]
    if name.endswith(tuple(words["facility_suffixes"])):
        return "facility"
    return "area" if name.endswith(tuple(words["area_suffixes"])) else "bare"


def place_words(name: str) -> list[str]:
    """The words a sentence may put after `name` (工地, 站 or nothing); they are not part of the name."""
    return load("sites")["place_words"][name_kind(name)]


def gazetteer(*, held_out: bool) -> list[str]:
    return load("sites")["gazetteer"]["held_out" if held_out else "seen"]


def is_held_out_stem(stem: str) -> bool:
    return zlib.crc32(stem.encode("utf-8")) % load("sites")["compose"]["held_out_one_in"] == 0


class SitePool:
    """The sites of one split: a share of gazetteer names, the rest composed names never drawn before.

    `taken` is shared by all splits, so a composed name appears in one dialogue of one split only. With
    `lengthen` (the training split's own generator) stems get extra pool characters, drawn from it alone
    (sites.toml, `train_extra_chars`). Even so, changing them changes the later splits: a name already taken
    is drawn again from `rng`, and which names are taken changes with them.
    """

    def __init__(
        self, rng: random.Random, *, held_out: bool, taken: set[str], lengthen: random.Random | None = None
    ) -> None:
        self._rng = rng
        self._lengthen = lengthen
        self._held_out = held_out
        self._taken = taken
        self._gazetteer = Deck(rng, gazetteer(held_out=held_out))
        self._listed = set(gazetteer(held_out=True)) | set(gazetteer(held_out=False))
        self._places = [name for name in gazetteer(held_out=held_out) if name_kind(name) == "bare"]
        compose = load("sites")["compose"]
        self._compose = compose
        self._stem_chars = list(dict.fromkeys(compose["stem_chars"]))

    def draw(self) -> Site:
        if self._rng.random() < self._compose["gazetteer_share"]:
            return Site(self._gazetteer.draw(), "gazetteer")
        while True:
            name = self._composed_name()
            if name not in self._taken and name not in self._listed:
                self._taken.add(name)
                return Site(name, "composed")

    def _composed_name(self) -> str:
        stem = self._stem()
        while is_held_out_stem(stem) != self._held_out:
            stem = self._stem()
        if self._lengthen:
            stem = self._longer(stem)
        pattern = self._rng.choice(self._compose["patterns"])
        place = self._rng.choice(self._places) if "{place}" in pattern else ""
        return pattern.format(
            stem=stem,
            kv=self._rng.choice(self._compose["kv"]),
            n=self._rng.randint(*self._compose["numbers"]),
            place=place,
        )

    def _stem(self) -> str:
        """A stem of 2 or 3 characters from the pool (rarely one repeated, as in 山山屯)."""
        length = self._rng.choice(self._compose["stem_lengths"])
        return "".join(self._rng.choices(self._stem_chars, k=length))

    def _longer(self, stem: str) -> str:
        """`stem` with extra pool characters at random places, still on this pool's side of the held-out split."""
        assert self._lengthen is not None
        rng, extra = self._lengthen, self._lengthen.choice(self._compose["train_extra_chars"])
        while True:
            longer = stem
            for _ in range(extra):
                at = rng.randint(0, len(longer))
                longer = longer[:at] + rng.choice(self._stem_chars) + longer[at:]
            if is_held_out_stem(longer) == self._held_out:
                return longer

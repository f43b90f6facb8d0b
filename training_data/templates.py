"""The user's words: sentence frames filled with a site, a date and a check word, kept as labelled pieces.

An utterance is a tuple of pieces, each labelled with what it is (frame words, check word, site name,
date), so that noise can treat them differently and the tool call can copy the site and date as heard.
"""

from dataclasses import dataclass
from functools import cached_property
from string import Formatter
from typing import Literal, get_args

from agent.reports import Check
from training_data import load

Family = Literal["greeting", "request", "no_site", "no_check", "vague", "site_answer", "check_answer"]
FAMILIES: tuple[Family, ...] = get_args(Family)
Span = Literal["frame", "check", "site", "date"]
CheckSlot = Literal["topic", "issue"]
CHECK_SLOTS: tuple[CheckSlot, ...] = get_args(CheckSlot)


@dataclass(frozen=True)
class Piece:
    span: Span
    text: str


Utterance = tuple[Piece, ...]


@dataclass(frozen=True)
class Template:
    id: str
    frame: str

    @cached_property
    def parts(self) -> tuple[tuple[str, str | None], ...]:
        """The frame as (literal text, slot name or None) pairs."""
        return tuple((literal, field) for literal, field, _, _ in Formatter().parse(self.frame))

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(field for _, field in self.parts if field is not None)


def templates(family: Family, *, held_out: bool) -> tuple[Template, ...]:
    """A family's frames; ids are `family:07` for seen frames and `family:h07` for held-out ones."""
    part, mark = ("held_out", "h") if held_out else ("seen", "")
    frames = load("templates")[part][family]
    return tuple(Template(f"{family}:{mark}{index:02d}", frame) for index, frame in enumerate(frames))


def check_words(check: Check, slot: CheckSlot) -> list[str]:
    return load("templates")["checks"][check][slot]


def fill(template: Template, values: dict[str, Utterance]) -> Utterance:
    """The frame's literal text as frame pieces, each slot replaced by its pieces; empty pieces dropped."""
    pieces: list[Piece] = []
    for literal, field in template.parts:
        pieces.append(Piece("frame", literal))
        if field is not None:
            pieces.extend(values[field])
    return tuple(piece for piece in pieces if piece.text)


def text(utterance: Utterance) -> str:
    return "".join(piece.text for piece in utterance)


def heard(utterance: Utterance, span: Span) -> str | None:
    """The text of the utterance's piece of that span (its site name, date or check word), if any."""
    return next((piece.text for piece in utterance if piece.span == span), None)

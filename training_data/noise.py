"""Speech-recognition noise: characters masked, replaced by homophones or dropped, every op on the record.

Ops land mostly on frame words. The site name and the date are hit rarely (at most once each per turn,
never a date's digits, never leaving a name shorter than two characters); check words get homophones only.
"""

import random
from functools import cache
from typing import Any, Literal

from training_data import load
from training_data.templates import Piece, Span, Utterance, heard, text

Level = Literal["none", "low", "high"]
NoiseOp = dict[str, Any]  # {"op", "pos", "span", "old", "new"}; pos indexes the clean text


def draw_level(rng: random.Random) -> Level:
    levels = load("noise")["levels"]
    return rng.choices(list(levels), weights=list(levels.values()))[0]


@cache
def homophones() -> dict[str, str]:
    """Each character that has homophones, with all of them."""
    alike: dict[str, str] = {}
    for group in load("noise")["homophones"]:
        for char in group:
            alike[char] = "".join(dict.fromkeys(alike.get(char, "") + group.replace(char, "")))
    return alike


def add_noise(rng: random.Random, utterance: Utterance, level: Level) -> tuple[Utterance, list[NoiseOp]]:
    """The utterance as heard at `level`, and the ops that made it so, in text order."""
    if level == "none":
        return utterance, []
    config = load("noise")
    clean = text(utterance)
    spans = [piece.span for piece in utterance for _ in piece.text]
    site_length = len(heard(utterance, "site") or "")
    changes: dict[int, NoiseOp] = {}
    for _ in range(rng.randint(*config["ops_per_turn"][level])):
        op = rng.choices(list(config["op_shares"]), weights=list(config["op_shares"].values()))[0]
        on_name = rng.random() < config["name_share"]
        hit = {change["span"] for change in changes.values()}
        positions = [
            position
            for position, (char, span) in enumerate(zip(clean, spans, strict=True))
            if position not in changes and allowed(op, char, span, on_name=on_name, hit=hit, site_length=site_length)
        ]
        if positions:
            position = rng.choice(positions)
            old = clean[position]
            new = replacement(rng, op, old)
            changes[position] = {"op": op, "pos": position, "span": spans[position], "old": old, "new": new}
    return apply(utterance, changes), [changes[position] for position in sorted(changes)]


def allowed(op: str, char: str, span: Span, *, on_name: bool, hit: set[str], site_length: int) -> bool:
    """Whether `op` may hit this character, given whether this op aims at the name/date or the frame."""
    if op == "homophone" and char not in homophones():
        return False
    if span == "site":
        return on_name and span not in hit and (op != "drop" or site_length > 2)
    if span == "date":
        return on_name and span not in hit and not char.isdigit()
    return not on_name and (span == "frame" or op == "homophone")


def replacement(rng: random.Random, op: str, old: str) -> str:
    if op == "drop":
        return ""
    if op == "homophone":
        return rng.choice(homophones()[old])
    return rng.choice([char for char in load("noise")["mask_chars"] if char != old])


def apply(utterance: Utterance, changes: dict[int, NoiseOp]) -> Utterance:
    pieces = []
    start = 0
    for piece in utterance:
        chars = [
            changes[position]["new"] if position in changes else char
            for position, char in enumerate(piece.text, start=start)
        ]
        start += len(piece.text)
        pieces.append(Piece(piece.span, "".join(chars)))
    return tuple(piece for piece in pieces if piece.text)

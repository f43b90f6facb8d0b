"""From detected boxes to people: who wears a helmet, who carries equipment.

Pure geometry, no model. A head belongs to the person box that holds its centre in its upper half
(the closest such person horizontally, if several); each person has at most one head, the most
confident. A person without a judged head is `unknown` for helmets: never counted either way.
Equipment belongs to the person box that holds its centre (the closest, if several).
When the detector has no `person` class, every head is a person of its own.
"""

from dataclasses import dataclass
from typing import Literal

from tools.detector_config import HEAD_ROLES, Role

HelmetState = Literal["helmet", "no_helmet", "unknown"]
# A head's centre must lie in this top fraction of a person's box to be that person's head.
HEAD_ZONE = 0.5


@dataclass(frozen=True)
class Box:
    role: Role
    label: str  # the model's class name
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    def holds(self, point: tuple[float, float], zone: float = 1.0) -> bool:
        x, y = point
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y1 + zone * (self.y2 - self.y1)


@dataclass(frozen=True)
class Person:
    box: Box
    helmet: HelmetState
    equipment: tuple[Box, ...]
    head: Box | None


def _closest(point: tuple[float, float], bodies: list[Box], candidates: list[int]) -> int:
    """Of the candidate bodies, the one whose centre is horizontally closest, relative to its width."""
    return min(candidates, key=lambda i: abs(bodies[i].centre[0] - point[0]) / max(bodies[i].x2 - bodies[i].x1, 1e-6))


def _state(head: Box | None) -> HelmetState:
    if head is None or head.role == "head":
        return "unknown"
    return "helmet" if head.role == "helmet" else "no_helmet"


def people(boxes: list[Box], persons_from_heads: bool) -> list[Person]:
    """The people in one image; `persons_from_heads` when the detector has no `person` class."""
    heads = sorted((b for b in boxes if b.role in HEAD_ROLES), key=lambda b: -b.confidence)
    bodies = heads if persons_from_heads else [b for b in boxes if b.role == "person"]
    head_of: dict[int, Box] = dict(enumerate(heads)) if persons_from_heads else {}
    if not persons_from_heads:
        for head in heads:
            free = [i for i, body in enumerate(bodies) if i not in head_of and body.holds(head.centre, HEAD_ZONE)]
            if free:
                head_of[_closest(head.centre, bodies, free)] = head
    carried: dict[int, list[Box]] = {}
    for item in (b for b in boxes if b.role == "equipment"):
        holders = [i for i, body in enumerate(bodies) if body.holds(item.centre)]
        if holders:
            carried.setdefault(_closest(item.centre, bodies, holders), []).append(item)
    return [
        Person(body, _state(head_of.get(i)), tuple(carried.get(i, ())), head_of.get(i)) for i, body in enumerate(bodies)
    ]

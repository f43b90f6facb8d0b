"""Recounts: head-count dialogues of the training split again, with fresh counts and only the report learned.

A head count's report ends in a verdict that compares the two numbers it has just written (应到 / 实到): equal,
fewer or more. In the generated data that comparison is a few tokens of about one dialogue in four, and the
small default model learns to copy both numbers long before it learns to compare them
(docs/default_model_history.md: the head-count verdict). A recount is one such dialogue as it was — the
inspector's words, the calls, the observations in the real tools' shapes — with the two counts drawn again for
a crew that is complete, short or over (chosen uniformly; the generator's own `counts`: close calls half the
time), the report rendered from them by `agent.reports.render`, and every turn but that report marked
`"loss": false`, so the calls it repeats are not learned twice. One recount in 8 is instead an order that sends nobody:
0 expected workers with the order's leader and equipment kept and a crew on the image, reported as work
without an order. The demo database has such orders; the generated days without an order never name a leader,
and the model trained without these recounts read them as complete crews. The generated days without an order
themselves are not recounted: a recount phase that drew them did worse on the crews
(docs/default_model_history.md: recounts).
"""

import random

from agent.chatglm_format import Dialogue
from agent.reports import render
from training_data.observations import counts

CHECK = "人数检测"
OUTCOMES = ("people_normal", "people_absent", "people_excess")
NO_ORDER = "people_no_order"
SENDS_NOBODY_SHARE = 1 / 8  # orders of 0 workers with a crew on site; observations.py's days without an order differ


def order_and_detection(dialogue: Dialogue) -> tuple[int, int] | None:
    """Indices of a single-report head count's work-order and detection turns, or None for any other dialogue.

    It qualifies when its last turn is its only head-count report and that report is what the one work order
    with a crew (a positive integer `expected_workers`) and the one detection (`persons`) render to.
    """
    turns = dialogue.conversations
    orders = [i for i, t in enumerate(turns) if t.role == "tool" and _is_order(t.observation)]
    detections = [i for i, t in enumerate(turns) if t.role == "tool" and _is_detection(t.observation)]
    reports = [i for i, t in enumerate(turns) if t.role == "assistant" and t.content.startswith(f"[{CHECK}]")]
    if len(orders) != 1 or len(detections) != 1 or reports != [len(turns) - 1]:
        return None
    order, detection = turns[orders[0]].observation, turns[detections[0]].observation
    if render(CHECK, order, detection) != turns[-1].content:
        return None
    return orders[0], detections[0]


def _is_order(observation: object) -> bool:
    crew = isinstance(observation, dict) and observation.get("expected_workers")
    return type(crew) is int and crew > 0  # a day without an order names no leader: not recounted to a crew


def _is_detection(observation: object) -> bool:
    return isinstance(observation, dict) and type(observation.get("persons")) is int


def recount(dialogue: Dialogue, turns: tuple[int, int], rng: random.Random) -> Dialogue:
    """`dialogue` with fresh counts at its (work order, detection) `turns` and its report re-rendered; only
    that report is learned."""
    outcome = NO_ORDER if rng.random() < SENDS_NOBODY_SHARE else rng.choice(OUTCOMES)
    expected, detected = counts(rng, outcome)
    conversations = [turn.model_copy(update={"loss": False}) for turn in dialogue.conversations]
    order_turn, detection_turn = (conversations[i] for i in turns)
    order = {**order_turn.observation, "expected_workers": expected}
    detection = {**detection_turn.observation, **detected}
    conversations[turns[0]] = order_turn.model_copy(update={"observation": order})
    conversations[turns[1]] = detection_turn.model_copy(update={"observation": detection})
    conversations[-1] = conversations[-1].model_copy(update={"content": render(CHECK, order, detection), "loss": True})
    return Dialogue(tools=dialogue.tools, conversations=conversations)  # the generator's `meta` no longer holds


def recounts(dialogues: list[Dialogue], seed: int, count: int) -> list[Dialogue]:
    """`count` recounts of the head counts among `dialogues`, deterministically from `seed`."""
    rng = random.Random(f"recounts-{seed}")
    found = [(d, turns) for d in dialogues if (turns := order_and_detection(d)) is not None]
    if not found:
        raise ValueError("no single-report head-count dialogue to recount")
    return [recount(*found[rng.randrange(len(found))], rng) for _ in range(count)]

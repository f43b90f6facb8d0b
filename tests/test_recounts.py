"""Recounts: head-count dialogues with fresh counts, each report the one its observations give, only it learned."""

import json
from collections import Counter

import pytest

from agent.chatglm_format import Dialogue, dialogue_messages, read_dialogues
from agent.reports import outcome, render, report_numbers
from training_data.generate import generate_splits
from training_data.recounts import NO_ORDER, OUTCOMES, SENDS_NOBODY_SHARE, order_and_detection, recounts


@pytest.fixture(scope="module")
def train(tmp_path_factory) -> list[Dialogue]:
    folder = tmp_path_factory.mktemp("data")
    generate_splits(folder, seed=5, size=400)
    return read_dialogues(folder / "train.jsonl")


def test_only_single_report_head_counts_qualify(train):
    found = 0
    for dialogue in train:
        outcomes = (dialogue.model_extra or {})["meta"]["outcomes"]  # what the generator made it for
        if order_and_detection(dialogue) is not None:
            found += 1
            assert outcomes[-1] in OUTCOMES
        elif len(outcomes) == 1:
            assert outcomes[0] not in OUTCOMES
    assert 0.1 * len(train) < found < 0.5 * len(train)


def test_a_recount_reports_its_fresh_counts_and_learns_only_the_report(train):
    made = recounts(train, seed=1, count=600)
    seen: Counter[str] = Counter()
    for dialogue in made:
        order, detection = (observed(dialogue, key) for key in ("expected_workers", "persons"))
        report = dialogue.conversations[-1].content
        assert report == render("人数检测", order, detection)
        assert report_numbers(report) == {"expected": order["expected_workers"], "persons": detection["persons"]}
        seen[outcome("人数检测", order, detection)] += 1
        learned = [message.content for message in dialogue_messages(dialogue) if message.loss]
        assert learned == [report]
    assert set(seen) == {*OUTCOMES, NO_ORDER} and min(seen[name] for name in OUTCOMES) > 100
    assert abs(seen[NO_ORDER] - SENDS_NOBODY_SHARE * len(made)) < 30


def test_an_order_that_sends_nobody_keeps_its_leader_and_has_a_crew_on_site(train):
    made = [d for d in recounts(train, seed=1, count=200) if observed(d, "expected_workers")["expected_workers"] == 0]
    assert made
    for dialogue in made:
        order, detection = observed(dialogue, "expected_workers"), observed(dialogue, "persons")
        assert order["leader"] and detection["persons"] > 0
        assert dialogue.conversations[-1].content.endswith("无工单出工, 可能存在非法进入")


def test_a_recount_keeps_everything_but_the_counts(train):
    def without_counts(dialogue: Dialogue) -> str:
        turns = [turn.model_dump(exclude={"loss"}) for turn in dialogue.conversations[:-1]]
        for turn in turns:
            for key in ("expected_workers", "persons"):
                if isinstance(turn.get("observation"), dict):
                    turn["observation"].pop(key, None)
        return json.dumps(turns, ensure_ascii=False)

    originals = {without_counts(d) for d in train if order_and_detection(d)}
    made = recounts(train, seed=2, count=100)
    assert all(without_counts(dialogue) in originals for dialogue in made)


def observed(dialogue: Dialogue, key: str) -> dict:
    """The one observation of `dialogue` that has `key`."""
    (observation,) = (t.observation for t in dialogue.conversations if t.role == "tool" and key in t.observation)
    return observation


def test_recounts_are_deterministic_and_need_a_head_count(train):
    assert recounts(train, seed=3, count=20) == recounts(train, seed=3, count=20)
    assert recounts(train, seed=3, count=20) != recounts(train, seed=4, count=20)
    others = [d for d in train if order_and_detection(d) is None]
    with pytest.raises(ValueError, match="no single-report head-count dialogue"):
        recounts(others, seed=0, count=1)

"""Follow-ups: a dialogue that ran a tool, then a greeting of the split's own frames, only its reply learned."""

import pytest

from agent.chatglm_format import Dialogue, dialogue_messages, read_dialogues
from prompts import load
from training_data.follow_ups import follow_ups, ran_a_tool
from training_data.generate import generate_splits
from training_data.templates import templates

REPLY = load("reports")["greeting"]


@pytest.fixture(scope="module")
def train(tmp_path_factory) -> list[Dialogue]:
    folder = tmp_path_factory.mktemp("data")
    generate_splits(folder, seed=5, size=400)
    return read_dialogues(folder / "train.jsonl")


def frames(held_out: bool) -> set[str]:
    return {template.frame for template in templates("greeting", held_out=held_out)}


def test_a_follow_up_greets_after_the_dialogue_as_it_was_and_learns_only_the_reply(train):
    originals = {d.model_dump_json(exclude={"meta"}) for d in train if ran_a_tool(d)}
    made = follow_ups(train, seed=1, count=200)
    greetings = set()
    for dialogue in made:
        *before, greeting, reply = dialogue.conversations
        unlearned = [turn.model_copy(update={"loss": True}) for turn in before]
        assert Dialogue(tools=dialogue.tools, conversations=unlearned).model_dump_json() in originals
        assert greeting.role == "user" and reply.role == "assistant" and reply.content == REPLY
        assert [message.content for message in dialogue_messages(dialogue) if message.loss] == [REPLY]
        greetings.add(greeting.content)
    assert len(greetings) > 10
    assert greetings & frames(held_out=False) and not greetings & frames(held_out=True)


def test_held_out_follow_ups_greet_in_held_out_frames(train):
    made = follow_ups(train, seed=1, count=200, held_out=True)
    assert {d.conversations[-2].content for d in made} & frames(held_out=True)


def test_follow_ups_are_deterministic_and_need_a_dialogue_that_ran_a_tool(train):
    assert follow_ups(train, seed=3, count=20) == follow_ups(train, seed=3, count=20)
    assert follow_ups(train, seed=3, count=20) != follow_ups(train, seed=4, count=20)
    with pytest.raises(ValueError, match="no dialogue that ran a tool"):
        follow_ups([d for d in train if not ran_a_tool(d)], seed=0, count=1)

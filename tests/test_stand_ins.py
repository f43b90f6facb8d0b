"""Stand-ins: characters the tokenizer lacks reach the model as pieces it knows, and come back out."""

import os
import random
import subprocess
import sys

import pytest

from agent.chatglm_format import Message, ToolCall, call_message, observation_message
from agent.prompting import Prompting
from agent.stand_ins import SITE_VALUE, STAND_INS, Aliases, Practice, aliases
from tests.glm_tiny import tiny_glm


def conversation(request: str, site: str) -> list[Message]:
    return [
        Message("user", request),
        call_message(ToolCall("count_people", {"site": site})),
        observation_message({"image": f"images/{site}工地/a.jpg", "persons": 3}),
    ]


def called_site(message: Message) -> str:
    return SITE_VALUE.findall(message.content)[0]


def test_unknown_characters_of_the_users_words_get_stand_ins_in_every_message(small_tokenizer):
    messages = conversation("查查在邯郸工地人数嘛", "邯郸")
    found = aliases(messages, small_tokenizer, STAND_INS)
    assert found.hidden == {"邯": STAND_INS[0], "郸": STAND_INS[1]}
    hidden = found.hide(messages)
    assert [m.content.count(STAND_INS[0] + STAND_INS[1]) for m in hidden] == [1, 1, 1]
    assert not any("邯" in m.content or "郸" in m.content for m in hidden)
    assert found.restore(f"tool_call(site='{STAND_INS[:2]}')") == "tool_call(site='邯郸')"
    assert [m.role for m in hidden] == [m.role for m in messages]


def test_known_text_is_left_as_it_is(small_tokenizer):
    messages = conversation("查查在济南工地人数嘛", "济南")
    found = aliases(messages, small_tokenizer, STAND_INS)
    assert found == Aliases({}) and found.hide(messages) is messages
    assert aliases(conversation("查查在邯郸工地人数嘛", "邯郸"), small_tokenizer, "") == Aliases({})


def test_a_stand_in_the_conversation_uses_is_skipped_and_characters_beyond_the_stand_ins_stay(small_tokenizer):
    typed = aliases([Message("user", f"邯郸{STAND_INS[0]}")], small_tokenizer, STAND_INS)
    assert typed.hidden == {"邯": STAND_INS[1], "郸": STAND_INS[2]}
    short = aliases([Message("user", "邯郸")], small_tokenizer, STAND_INS[:1])
    assert short.hidden == {"邯": STAND_INS[0]} and short.hide([Message("user", "邯郸")])[0].content[1] == "郸"


def test_only_the_users_words_decide_what_is_hidden(small_tokenizer):
    messages = [Message("system", "邯郸"), Message("user", "济南"), Message("assistant", "郸")]
    assert aliases(messages, small_tokenizer, STAND_INS) == Aliases({})


def test_practice_hides_a_share_of_the_dialogues_consistently_and_repeatably():
    rng = random.Random(0)
    sites = ["".join(rng.choice("东西南北山河湖海") for _ in range(3)) for _ in range(200)]
    dialogues = [conversation(f"查查在{site}工地人数嘛", site) for site in sites]
    practice = Practice(share=0.5, most=4, seed=7)
    first, second = list(practice.dialogues(dialogues)), list(practice.dialogues(dialogues))
    assert first == second
    changed = [d for d, original in zip(first, dialogues, strict=True) if d != original]
    assert 60 < len(changed) < 140
    firsts = []
    for messages in changed:
        request = messages[0].content
        used = [char for char in dict.fromkeys(request) if char in STAND_INS]
        assert 1 <= len(used) <= 4
        firsts.append(used[0])
        site = called_site(messages[1])
        assert site in request  # the call still copies a span of the (hidden) request
    assert set(firsts) == set(STAND_INS)  # which stand-in comes first is drawn, not always the first
    assert list(Practice(share=0.0, most=4, seed=7).dialogues(dialogues)) == dialogues


@pytest.fixture(scope="module")
def reserving_tokenizer(tmp_path_factory):
    from agent.sp_train import train_tokenizer

    texts = ["查查在济南工地人数嘛", "query_work_order\n```python\ntool_call(site='济南')\n```"] * 5
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), merges=20, min_char_count=1, reserved=STAND_INS)


def test_the_tokenizer_reserves_a_piece_for_each_stand_in(reserving_tokenizer):
    tok = reserving_tokenizer
    assert set(STAND_INS) <= tok.characters and not {"邯", "郸"} & tok.characters
    assert all([tok.piece(i) for i in tok.encode(char) if tok.piece(i) != "▁"] == [char] for char in STAND_INS)


def test_the_backend_shows_the_model_stand_ins_and_hands_back_the_original_text(reserving_tokenizer):
    pytest.importorskip("torch")
    from agent.glm_backend import GLMBackend

    tok = reserving_tokenizer
    model = tiny_glm(tok.vocab_size)
    messages = [Message("user", "查查在邯郸工地人数嘛")]
    found = aliases(messages, tok, STAND_INS)
    [shown] = GLMBackend(model, tok, prompting=Prompting(stand_ins=STAND_INS)).generate([messages], max_new_tokens=8)
    [hidden] = GLMBackend(model, tok).generate([found.hide(messages)], max_new_tokens=8)
    [raw] = GLMBackend(model, tok).generate([messages], max_new_tokens=8)
    assert shown.token_ids == hidden.token_ids and shown.text == found.restore(hidden.text)
    assert shown.prompt_tokens == hidden.prompt_tokens == raw.prompt_tokens - 4  # two characters, 3 bytes each


def test_name_swaps_write_characters_only_the_name_holds_as_others_in_every_message():
    rng = random.Random(1)
    sites = ["".join(rng.sample("东西南北山河湖海", 3)) for _ in range(200)]
    dialogues = [conversation(f"查查在{site}工地人数嘛", site) for site in sites]
    practice = Practice(share=0.0, most=2, seed=7, swaps=0.5, alphabet="火星金木水土东")
    first = list(practice.dialogues(dialogues))
    assert first == list(practice.dialogues(dialogues))
    changed = [(d, original) for d, original in zip(first, dialogues, strict=True) if d != original]
    assert 60 < len(changed) < 140
    for messages, original in changed:
        site = called_site(messages[1])
        before = called_site(original[1])
        swapped = [(a, b) for a, b in zip(before, site, strict=True) if a != b]
        assert 1 <= len(swapped) <= 2 and all(b in "火星金木水土东" and b not in before for _, b in swapped)
        assert messages[0].content == f"查查在{site}工地人数嘛" and site in messages[2].content
    assert list(Practice(share=0.5, most=4, seed=7).dialogues(dialogues)) == list(
        Practice(share=0.5, most=4, seed=7, swaps=0.0, alphabet="火星").dialogues(dialogues)
    )


def test_a_name_character_the_other_words_hold_too_is_never_swapped():
    always = Practice(share=0.0, most=4, seed=7, swaps=1.0, alphabet="火星金木")
    [messages] = always.dialogues([conversation("查查在人民工地人数嘛", "人民")])  # 人 is the request's too
    site = called_site(messages[1])
    assert site[0] == "人" and site[1] in "火星金木" and messages[0].content == f"查查在{site}工地人数嘛"
    [kept] = always.dialogues([conversation("查查在数人工地人数嘛", "数人")])  # no character is the name's alone
    assert kept == conversation("查查在数人工地人数嘛", "数人")


def test_name_swaps_do_not_depend_on_the_processs_string_hashing():
    script = (
        "from agent.chatglm_format import Message, ToolCall, call_message;"
        "from agent.stand_ins import Practice;"
        "calls = [call_message(ToolCall('count_people', {'site': s})) for s in ('东河', '西湖', '南山', '北海')];"
        "d = [Message('user', '查东河西湖南山北海'), *calls];"
        "p = Practice(0.0, 4, 7, swaps=1.0, alphabet='火星金木水土');"
        "print([[m.content for m in x] for x in p.dialogues([d] * 20)])"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(runs) == 1

"""Constrained decoding of tool calls: enum values and values quoted from the inspector's words."""

import json
import re
from pathlib import Path

import pytest

from agent.call_constraint import CallConstraint, ConversationConstraint, Span, Vocabulary, choose_span
from agent.chatglm_format import Message, ToolCall, call_message
from agent.session import DEFAULT_MODEL
from tools.catalog import derived_tools

CALL = "query_work_order\n ```python\ntool_call("
REQUEST = "查查在济南工地人数嘛"


@pytest.fixture(params=["small", "chatglm3"])
def tokenizer(request, small_tokenizer, chatglm3_tokenizer):
    return small_tokenizer if request.param == "small" else chatglm3_tokenizer


def allowed_after(tokenizer, written: str, words: list[str]) -> list[bytes] | None:
    """The pieces that may follow `written`; None where any may."""
    vocabulary = Vocabulary(tokenizer.token_bytes)
    row = CallConstraint.of(derived_tools()).for_conversation([Message("user", w) for w in words], vocabulary)
    for token in tokenizer.encode(written):
        row.add(token)
    allowed = row.allowed()
    return None if allowed is None else [vocabulary.token_bytes[token] for token in allowed]


def test_token_bytes_spell_out_what_decode_writes(tokenizer):
    text = "查查济南 110kV 变电站, 还有邯郸"
    ids = tokenizer.encode(text)
    assert b"".join(tokenizer.token_bytes[i] for i in ids).decode("utf-8").strip() == text
    assert len(tokenizer.token_bytes) == tokenizer.vocab_size
    assert tokenizer.token_bytes[tokenizer.role("user")] == b""


def test_a_quoted_value_starts_with_a_piece_of_the_inspectors_words(tokenizer):
    allowed = allowed_after(tokenizer, CALL + "site='", [REQUEST])
    assert allowed
    assert all(piece.split(b"'")[0] in REQUEST.encode() for piece in allowed)
    assert "济".encode() in allowed or "济南".encode() in allowed
    assert not any(piece.startswith(b"'") for piece in allowed), "an empty value is not a quote"


def test_a_quoted_value_continues_its_span_or_closes(tokenizer):
    allowed = allowed_after(tokenizer, CALL + "site='济", ["去过广州", REQUEST])
    assert allowed
    assert any(piece.startswith("南".encode()) for piece in allowed)
    assert any(piece.startswith(b"'") for piece in allowed)
    assert not any(piece.startswith("州".encode()) for piece in allowed)
    assert all(("济".encode() + piece.split(b"'")[0]) in REQUEST.encode() for piece in allowed)


def test_earlier_messages_are_the_inspectors_words_too(tokenizer):
    allowed = allowed_after(tokenizer, CALL + "site='广", ["去过广州", REQUEST])
    assert allowed and all(piece.split(b"'")[0] in "州".encode() for piece in allowed)


def test_an_enum_value_is_one_of_the_schemas_and_closes_only_when_whole(tokenizer):
    allowed = allowed_after(tokenizer, CALL + "site='济南', check='人数", [REQUEST])
    assert allowed and all("检测".encode().startswith(piece) for piece in allowed)
    closing = allowed_after(tokenizer, CALL + "site='济南', check='人数检测", [REQUEST])
    assert closing and all(piece.startswith(b"'") for piece in closing)


@pytest.mark.parametrize(
    "written",
    [
        "您好,我是",  # a reply, not a call
        "no_such_tool\n ```python\ntool_call(site='",  # not a tool of the catalog
        "count_people\n ```python\ntool_call(image='",  # a string argument neither enum nor quoted
    ],
)
def test_nothing_else_is_constrained(small_tokenizer, written):
    assert allowed_after(small_tokenizer, written, [REQUEST]) is None


def test_a_call_names_its_tools_arguments_once(small_tokenizer):
    pieces = small_tokenizer.token_bytes
    for written in (CALL, CALL + "site='济南', ", CALL + "site='济南', che"):
        allowed = allowed_after(small_tokenizer, written, [REQUEST])
        assert allowed
        call = written.encode().partition(b"tool_call(")[2]
        for piece in (p for p in allowed if b"=" in p):
            names = re.findall(rb"(?:\(|,)\s*(\w+)\s*=", b"(" + call + piece)
            assert len(names) == len(set(names)) and set(names) <= {b"site", b"check", b"date"}, piece
    assert {b"(site='", b"te='", b"ck='"} <= set(pieces)
    after_site = allowed_after(small_tokenizer, CALL + "site='济南',", [REQUEST])
    assert b" check='" in after_site and b"(site='" not in after_site, "site= again"
    after_che = allowed_after(small_tokenizer, CALL + "site='济南', che", [REQUEST])
    assert b"ck='" in after_che and b"te='" not in after_che, "chete= is no argument"
    after_da = allowed_after(small_tokenizer, CALL + "site='济南', da", [REQUEST])
    assert b"te='" in after_da


def test_byte_fallback_pieces_copy_a_character_the_vocabulary_lacks(small_tokenizer):
    ids = small_tokenizer.encode("邯")
    assert len(ids) > 2, "邯 is not in the small tokenizer: it is spelt in bytes"
    allowed = allowed_after(small_tokenizer, CALL + "site='", ["邯郸站"])
    assert small_tokenizer.token_bytes[ids[-3]] in allowed
    assert not any(0x80 <= piece[0] < 0xC0 for piece in allowed), "never start in the middle of a character"


def test_the_quoted_arguments_come_from_the_catalogs_types():
    rules = CallConstraint.of(derived_tools()).rules
    assert rules["query_work_order", "site"].quoted and rules["count_people", "date"].quoted
    assert rules["query_work_order", "check"].enum == tuple(v.encode() for v in ("人数检测", "安全检查", "设备检查"))
    assert ("count_people", "image") not in rules
    assert {tool.name: tool.sites for tool in derived_tools()} == dict.fromkeys(
        ("query_work_order", "count_people", "check_helmets", "check_equipment"), frozenset({"site"})
    )
    assert "Quoted" not in str([tool.description for tool in derived_tools()]), "the schemas the model sees"


def test_the_shipped_model_writes_only_values_the_schemas_allow():
    """Constrained generation on real requests: every site and date is the inspector's, every check an enum."""
    from agent.glm_backend import GLMBackend
    from agent.loading import LoadOptions

    if not (DEFAULT_MODEL / "model.safetensors").is_file():
        pytest.skip("models/default is not built")
    requests = [
        "查查在济南工地人数嘛",
        "帮我看下泰桃源500kV变电站有没有人摘了安全帽",
        "2024-05-03邯郸站设备带齐了吗",
        "昨天坊文武工地到岗人数情况",
    ]
    backend = GLMBackend.load(Path(DEFAULT_MODEL), LoadOptions(device="cpu"), CallConstraint.of(derived_tools()))
    outputs = backend.generate([[Message("user", request)] for request in requests], 64)
    for request, output in zip(requests, outputs, strict=True):
        values = dict(re.findall(r"(\w+)='([^']*)'", output.text))
        assert values.get("site"), f"{request} → {output.text!r}: no site"
        assert values["site"] in request and values.get("date", "") in request
        assert values.get("check", "人数检测") in ("人数检测", "安全检查", "设备检查")


def test_a_call_does_not_end_before_its_required_arguments(small_tokenizer):
    ends = {p for p in small_tokenizer.token_bytes if b")" in p.partition(b"'")[2]}
    assert ends, "the small tokenizer has a piece like `')`"
    early = allowed_after(small_tokenizer, CALL + "site='济南", [REQUEST])
    assert early and not ends & set(early)
    assert not ends & set(allowed_after(small_tokenizer, CALL + "site='济南'", [REQUEST]) or ())
    done = allowed_after(small_tokenizer, CALL + "site='济南', check='人数检测", [REQUEST])
    assert done and ends & set(done)


def test_a_followed_span_is_written_then_closed(small_tokenizer):
    vocabulary = Vocabulary(small_tokenizer.token_bytes)
    row = CallConstraint.of(derived_tools()).for_conversation([Message("user", REQUEST)], vocabulary)
    for token in small_tokenizer.encode(CALL + "site='"):
        row.add(token)
    starts = row.span_starts()
    assert starts and "济南工地人数嘛".encode() in starts and all(REQUEST.encode().endswith(s) for s in starts)
    span = vocabulary.spell("济南".encode())
    row.follow(span)
    for token in span:
        assert row.allowed() == [token]
        row.add(token)
    closing = row.allowed()
    assert closing and all(vocabulary.token_bytes[t].startswith(b"'") for t in closing)
    assert row.span_starts() is None, "one span per value"


def test_span_scores_are_the_models_probabilities_of_whole_spans(small_tokenizer):
    """Spans scored on a left-padded batch's cache agree with full recomputation, and the best one wins."""
    import torch

    from agent.glm_backend import SPAN_STARTS, GLMBackend
    from tests.glm_tiny import tiny_glm

    model = tiny_glm(small_tokenizer.vocab_size, seed=3)
    backend = GLMBackend(model, small_tokenizer, CallConstraint.of(derived_tools()))
    quotes = Vocabulary(small_tokenizer.token_bytes).quotes
    prompts = [small_tokenizer.encode(text) for text in ("查查在济南工地人数嘛 " * 3, "青岛人数")]
    words = "济南工地人数"
    starts = [words[i:].encode() for i in range(len(words))]
    assert len(starts) <= SPAN_STARTS, "every start is scored"

    def score(prompt: list[int], span: list[int]) -> float:
        logp = model(input_ids=torch.tensor([prompt + span])).logits[0, :, : small_tokenizer.vocab_size]
        logp = logp.float().log_softmax(-1)
        pieces = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(span))
        return pieces + float(logp[-1, quotes].logsumexp(-1))

    with torch.inference_mode():
        output, attention, position = backend._prefill(prompts, [])
        for row, prompt in enumerate(prompts):
            first = output.logits[row, -1].clone()
            state = (first, row, output.past_key_values, attention, position)

            def best(registered=lambda text: False, first=first, row=row, cache=state[2:]) -> str:
                return small_tokenizer.decode(backend._best_span(starts, first, row, cache, registered))

            spelt, scores = backend._span_scores(starts, *state)
            assert sorted(map(tuple, spelt)) == sorted(tuple(backend._spell(s)) for s in starts)
            spans = {}
            for index, span in enumerate(spelt):
                for size in range(1, len(span) + 1):
                    spans[tuple(span[:size])] = expected = score(prompt, span[:size])
                    assert abs(float(scores[index, size - 1]) - expected) < 1e-4
            assert best() == small_tokenizer.decode(max(spans, key=spans.__getitem__))
            for bonus in (50.0, -50.0):
                backend.span_bonus = bonus  # per character: the longest span wins, or a one-character one
                assert len(best()) == (len(words) if bonus > 0 else 1)
            assert best(lambda text: text == "济南工地".encode()) == "济南工地", "a wider site of the database"
            backend.span_bonus = 0.0


def test_a_reports_digits_spell_only_the_observations_numbers(small_tokenizer):
    vocabulary = Vocabulary(small_tokenizer.token_bytes)
    conversation = [
        Message("user", "查查在济南工地人数嘛 2024"),
        Message("observation", '{"expected_workers": 47, "persons": 34}'),
    ]
    row = CallConstraint.of(derived_tools()).for_conversation(conversation, vocabulary)
    for token in small_tokenizer.encode("[人数检测] 应到4"):
        row.add(token)
    after_4 = {vocabulary.token_bytes[t] for t in row.allowed() or []}
    assert b"7" in after_4 and b"4" not in after_4 and b"3" not in after_4
    assert "人".encode() not in after_4, "4 is not a number of the observations: it may not end there"
    row.add(vocabulary.by_bytes[b"7"][0])
    after_47 = {vocabulary.token_bytes[t] for t in row.allowed() or []}
    assert "人".encode() in after_47 and b"0" not in after_47
    fresh = CallConstraint.of(derived_tools()).for_conversation(conversation, vocabulary).allowed() or []
    assert {b"3", b"4"} <= {vocabulary.token_bytes[t] for t in fresh}
    assert not {b"2", b"1"} & {vocabulary.token_bytes[t] for t in fresh}, "the user's 2024 is not observed"


def test_a_report_states_counts_and_error_digits_not_dates_or_paths():
    from agent.call_constraint import reported

    work_order = '{"site": "济南工地", "date": "2024-05-24", "expected_workers": 1, "leader": "王伟"}'
    detection = '{"image": "images/济南工地/2024-05-24_0815.jpg", "persons": 12, "unknown": 0, "ok": true}'
    failed = '{"error": "图像无法读取: images/济南工地/2024-05-24_0815.jpg", "hint": "如 2024-05-03"}'
    assert reported(work_order.encode()) == {b"1"}
    assert reported(detection.encode()) == {b"12", b"0"}
    assert reported(failed.encode()) == {b"2024", b"05", b"24", b"0815"}
    assert reported(b"7 of 9 heads") == {b"7", b"9"}, "a tool's text that is not JSON offers every number"


def test_replies_before_any_observation_are_free(small_tokenizer):
    vocabulary = Vocabulary(small_tokenizer.token_bytes)
    row = CallConstraint.of(derived_tools()).for_conversation([Message("user", "你好")], vocabulary)
    assert row.allowed() is None


def test_an_argument_is_not_named_again_after_its_value(small_tokenizer):
    """The rule looks at the whole call so far, not at a state remembered from inside the value."""
    vocabulary = Vocabulary(small_tokenizer.token_bytes)
    row = CallConstraint.of(derived_tools()).for_conversation([Message("user", REQUEST)], vocabulary)
    for token in small_tokenizer.encode(CALL + "site='济南', check='人数检测"):
        row.add(token)
    assert row.allowed(), "inside the value"
    [comma] = [t for t in vocabulary.quotes if vocabulary.token_bytes[t] in (b"',", b"', ")][:1]
    row.add(comma)
    allowed = {vocabulary.token_bytes[t] for t in row.allowed() or ()}
    assert allowed and all(b" date='".startswith(p) or b"date='".startswith(p) for p in allowed), allowed


def test_a_failed_checks_report_quotes_an_observed_error_whole(tokenizer):
    vocabulary = Vocabulary(tokenizer.token_bytes)
    error = "图像无法读取: images/济南工地/IMG_20240524_081500.jpg"
    conversation = [
        Message("user", "查查在济南工地人数嘛"),
        Message("observation", '{"site": "济南工地", "expected_workers": 3, "leader": "王伟"}'),
        Message("observation", json.dumps({"error": error}, ensure_ascii=False)),
    ]

    def allowed(written: str) -> set[bytes] | None:
        row = CallConstraint.of(derived_tools()).for_conversation(conversation, vocabulary)
        for token in tokenizer.encode(written):
            row.add(token)
        found = row.allowed()
        return None if found is None else {vocabulary.token_bytes[t] for t in found}

    lead = "[人数检测] 无法完成: "
    before = allowed("[人数检测] 应到")
    assert before is not None and "人".encode() in before, "before the lead: the numbers rule alone"
    start = allowed(lead)
    assert start and all(error.encode().startswith(piece) for piece in start)
    middle = allowed(lead + error[:-5])
    assert middle and all(error[-5:].encode().startswith(piece) for piece in middle)
    assert allowed(lead + error) == {b""}, "a whole error ends the report"


def test_a_later_call_of_the_turn_repeats_the_quoted_values_an_answered_call_gave(tokenizer):
    vocabulary = Vocabulary(tokenizer.token_bytes)
    constraint = CallConstraint.of(derived_tools())
    first = call_message(ToolCall("query_work_order", {"site": "济南历下", "check": "人数检测"}))
    answered = [Message("user", "查查在济南历下工地人数嘛"), first, Message("observation", '{"expected_workers": 3}')]
    failed = [*answered[:2], Message("observation", '{"error": "未找到站点“济南历下”"}')]

    def row_after(messages: list[Message], written: str) -> ConversationConstraint:
        row = constraint.for_conversation(messages, vocabulary)
        for token in tokenizer.encode(written):
            row.add(token)
        return row

    def allowed(messages: list[Message], written: str) -> list[bytes]:
        return [vocabulary.token_bytes[token] for token in row_after(messages, written).allowed() or ()]

    later = "count_people\n ```python\ntool_call(site='"
    assert row_after(answered, later).span_starts() is None, "no spans to score: the value is given"
    assert row_after(answered[:1], later).span_starts(), "spans are scored for a turn's first call"
    assert all("济南历下".encode().startswith(piece) for piece in allowed(answered, later))
    assert all(piece.startswith(b"'") for piece in allowed(answered, later + "济南历下")), "closes only when whole"
    assert any(piece.startswith(b"'") for piece in allowed(failed, later + "济南历")), "an error frees the value"
    assert any(piece.startswith(b"'") for piece in allowed(answered[:1], later + "济南历")), "a turn's first call"

    def after_site(messages: list[Message]) -> list[bytes]:
        return allowed(messages, later + "济南历下'")

    assert all(piece.startswith(b")") for piece in after_site(answered)), "no argument the turn's calls did not give"
    assert any(piece.startswith(b",") for piece in after_site(failed)), "after an error the call may name what it likes"
    asked = ToolCall("query_work_order", {"site": "济南历下", "check": "人数检测", "date": "昨天"})
    dated = [Message("user", "查查济南历下昨天人数"), call_message(asked), answered[2]]
    assert any(piece.startswith(b",") for piece in after_site(dated)), "a date the turn gave may follow"
    assert all("昨天".encode().startswith(piece) for piece in allowed(dated, later + "济南历下', date='"))


def spans(*scored: tuple[str, float, float]) -> list[Span]:
    return [Span(text.encode(), [], raw, score) for text, raw, score in scored]


def test_a_span_stopping_inside_a_site_of_the_database_takes_the_whole_name():
    found = spans(
        ("济南历", -0.04, 4.46), ("济南历下", -12.1, -6.1), ("济南", -7.6, -4.6), ("济南历下工地", -14.0, -5.0)
    )
    assert choose_span(found, {"济南历下".encode(), "济南历下工地".encode(), "济南".encode()}.__contains__).text == (
        "济南历下工地".encode()
    ), "the best-scoring of the wider sites"


def test_a_span_running_past_a_site_the_model_reads_alone_gives_way_to_it():
    found = spans(("济南2024-05-32", -8.9, 9.1), ("济南", -0.01, 2.99))
    assert choose_span(found, {"济南".encode()}.__contains__).text == "济南".encode()


def test_a_name_the_model_reads_whole_stays_though_a_site_lies_inside_it():
    found = spans(("青岛市", -0.02, 4.48), ("青岛", -7.27, -4.27))
    assert choose_span(found, {"青岛".encode()}.__contains__).text == "青岛市".encode(), "the tool lists candidates"
    assert choose_span(found, lambda text: False).text == "青岛市".encode()
    past = spans(
        ("青岛市2024-05-30", -15.0, 4.5), ("青岛市", -0.02, 4.48), ("青岛市2", -10.98, -4.98), ("青岛", -11.5, -8.5)
    )
    assert choose_span(past, {"青岛".encode()}.__contains__).text == "青岛市".encode(), "not the site inside it"
    cut = spans(("济南历下2024", -9.0, 4.0), ("济南历", -1.0, 3.5), ("济南历下", -3.0, 3.0), ("济南", -5.0, -2.0))
    assert choose_span(cut, {"济南历下".encode(), "济南".encode()}.__contains__).text == "济南历下".encode()
    best = spans(("济南", -0.5, 2.5), ("济南历下", -9.0, -3.0))
    assert choose_span(best, lambda text: True).text == "济南".encode(), "a site that the database knows stays"


def test_a_site_argument_knows_the_databases_sites_through_stand_ins(small_tokenizer):
    from tools.sites import Site, unambiguous_names

    sites = [Site(1, "济南历下工地", "", ()), Site(2, "济南工地", "", ("济南",)), Site(3, "济南站", "", ())]
    names = unambiguous_names(sites)
    assert names == {"济南历下"}, "济南 names two sites once normalised (济南工地, 济南站)"
    constraint = CallConstraint.of(derived_tools(), names)
    assert constraint.rules["count_people", "site"].registered == names
    assert not constraint.rules["count_people", "date"].registered
    row = constraint.for_conversation(
        [Message("user", "查\ue000南历下")],
        Vocabulary(small_tokenizer.token_bytes),
        lambda t: t.replace("\ue000", "济"),
    )
    for token in small_tokenizer.encode(CALL + "site='"):
        row.add(token)
    assert row.registered("\ue000南历下".encode()) and not row.registered("\ue000南历".encode())

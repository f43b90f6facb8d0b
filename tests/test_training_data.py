"""The generated training data end to end: format, dialogue rules, coverage, splits, determinism, CLI."""

import json
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.chatglm_format import parse_dialogue
from agent.cli import app
from agent.errors import UserError
from agent.reports import CHECKS, DETECTOR_FOR, outcome, render
from prompts import load as load_prompts
from tools.catalog import tool_descriptions
from tools.imports import capture_time
from training_data import generate
from training_data.dialogues import outcomes_of
from training_data.generate import (
    CONFIG_FILE,
    HELD_OUT,
    MORE,
    SPLITS,
    Example,
    GenerateConfig,
    generate_splits,
    make_splits,
)
from training_data.observations import DETECTION_FAILURES, EQUIPMENT_FAILURE, QUERY_FAILURES
from training_data.sites import gazetteer
from training_data.templates import FAMILIES, templates

SIZE = 6000  # every other split gets 300 dialogues
WORK_ORDER_KEYS = ["site", "date", "check", "expected_workers", "leader", "equipment"]
DETECTION_KEYS = {
    "count_people": ["image", "persons"],
    "check_helmets": ["image", "persons", "with_helmet", "without_helmet", "unknown"],
    "check_equipment": ["image", "persons", "with_equipment", "without_equipment"],
}
ERROR_KEYS = ["error", "hint"]
REPORT_OUTCOMES = list(load_prompts("reports")["outcomes"])
FAILURES = [*QUERY_FAILURES, *DETECTION_FAILURES, EQUIPMENT_FAILURE]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    generate_splits(folder, seed=7, size=SIZE)
    return folder


@pytest.fixture(scope="module")
def splits(out) -> dict[str, list[dict]]:
    return {split: [json.loads(line) for line in read(out / f"{split}.jsonl").splitlines()] for split in SPLITS}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def resolve(said: str, today: date) -> date:
    """The day a date string stands for, independently of the generator's code."""
    relative = {"今天": 0, "昨天": 1, "前天": 2}
    if said in relative:
        return today - timedelta(days=relative[said])
    if iso := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", said):
        return date(*map(int, iso.groups()))
    written = re.fullmatch(r"(?:(\d{4})年)?(\d{1,2})月(\d{1,2})[日号]", said)
    assert written, said
    year, month, day = written.groups()
    if year:
        return date(int(year), int(month), int(day))
    guess = date(today.year, int(month), int(day))
    return guess if guess <= today else date(today.year - 1, int(month), int(day))


def replies(dialogue: dict) -> list[str]:
    """The outcome id of every assistant message, recomputed from the conversation alone."""
    turns = dialogue["conversations"]
    texts = load_prompts("reports")
    found, heard = [], ""
    index = 0
    while index < len(turns):
        turn = turns[index]
        if turn["role"] == "user":
            heard += turn["content"]
            index += 1
            continue
        if turn["role"] == "assistant":
            content = turn["content"]
            if content == texts["greeting"]:
                found.append("greeting")
            elif content == texts["ask_site"]:
                found.append("ask_site")
            else:
                assert re.fullmatch(re.escape(texts["ask_check"]).replace(re.escape("{site}"), ".+"), content)
                found.append("ask_check")
            index += 1
            continue
        found.append(check_tool_calls(turns, index, heard, dialogue["meta"]["today"]))
        index += 3 if "error" not in turn["observation"] else 2
    return found


def check_tool_calls(turns: list[dict], index: int, heard: str, today: str) -> str:
    """Check the tool calls starting at turns[index] and their report; return the report's outcome id."""
    query = turns[index]
    check = query["parameters"]["check"]
    assert query["name"] == "query_work_order" and check in CHECKS
    assert list(query["parameters"]) in (["site", "check"], ["site", "check", "date"])
    site, said = query["parameters"]["site"], query["parameters"].get("date")
    assert site in heard and (said is None or said in heard), "arguments are copied from what was heard"
    order = query["observation"]
    if "error" in order:
        assert list(order) == ERROR_KEYS
        assert turns[index + 1] == {"role": "assistant", "content": render(check, order, None)}
        return failure_kind(order)
    assert list(order) == WORK_ORDER_KEYS and order["check"] == check
    day = date.fromisoformat(today) if said is None else resolve(said, date.fromisoformat(today))
    assert order["date"] == day.isoformat()
    assert (order["expected_workers"] == 0) == (order["leader"] is None)
    assert order["equipment"] or check != "设备检查" or order["expected_workers"] == 0
    detect = turns[index + 1]
    assert detect["name"] == DETECTOR_FOR[check]
    assert detect["parameters"] == {key: value for key, value in query["parameters"].items() if key != "check"}
    detection = detect["observation"]
    assert turns[index + 2] == {"role": "assistant", "content": render(check, order, detection)}
    if "error" in detection:
        assert list(detection) == ERROR_KEYS
        return failure_kind(detection)
    assert list(detection) == DETECTION_KEYS[detect["name"]]
    folder, name = detection["image"].rsplit("/", 1)
    assert folder == f"images/{order['site']}" and capture_time(Path(name)).date().isoformat() == order["date"]
    assert all(0 <= value <= 60 for key, value in detection.items() if key != "image")
    return outcome(check, order, detection)


def failure_kind(observation: dict) -> str:
    """The error kind of an error observation: its hint names it, its message fits its template."""
    texts = load_prompts("observations")
    [kind] = [kind for kind in FAILURES if texts["hints"][kind] == observation["hint"]]
    assert re.fullmatch(re.sub(r"\\\{\w+\\\}", ".+", re.escape(texts["errors"][kind])), observation["error"])
    return f"failed:{kind}"


def test_sizes_and_config(out, splits):
    assert [len(splits[split]) for split in SPLITS] == [SIZE, 300, 300, 300, 300]
    config = GenerateConfig.load(out / CONFIG_FILE)
    assert config == GenerateConfig.for_size(seed=7, size=SIZE)
    assert GenerateConfig.for_size(seed=1, size=20000).eval_size == 1000


def test_every_line_is_a_chatglm3_dialogue_with_the_tool_descriptions(out, splits):
    tools = tool_descriptions()
    for split in SPLITS:
        lines = read(out / f"{split}.jsonl").split("\n")
        assert lines[-1] == "" and all(lines[:-1])
        for line, dialogue in zip(lines[:-1], splits[split], strict=True):
            parse_dialogue(line)
            assert list(dialogue) == ["tools", "conversations", "meta"]
            assert dialogue["tools"] == tools
            assert dialogue["meta"]["split"] == split


def test_dialogues_follow_the_rules_and_meta_tells_the_truth(splits):
    for dialogue in (d for dialogues in splits.values() for d in dialogues):
        meta = dialogue["meta"]
        assert replies(dialogue) == meta["outcomes"], dialogue
        users = [turn for turn in dialogue["conversations"] if turn["role"] == "user"]
        assert len(users) == len(meta["templates"])
        assert len(meta["sites"]) == len(meta["site_sources"])
        assert dialogue["conversations"][-1]["role"] == "assistant"


def test_kinds(splits):
    for dialogue in splits["train"]:
        meta, turns = dialogue["meta"], dialogue["conversations"]
        if meta["kind"] == "greet":
            assert meta["outcomes"] == ["greeting"] and len(turns) == 2
        elif meta["kind"] == "request":
            assert len(meta["checks"]) == len(meta["sites"]) == 1 and turns[1]["role"] == "tool"
        elif meta["kind"] in ("ask_site", "ask_check"):
            assert meta["outcomes"] == [meta["kind"]] and len(turns) == 2
        else:
            assert len(meta["templates"]) >= 2
    kinds = Counter(dialogue["meta"]["kind"] for dialogue in splits["train"])
    assert 0.15 <= kinds["multi"] / SIZE <= 0.2


def test_every_template_and_outcome_is_covered(splits):
    for held_out, split in ((False, "train"), (True, "test_unseen"), (True, "dev_unseen")):
        used = {template for dialogue in splits[split] for template in dialogue["meta"]["templates"]}
        for family in FAMILIES:
            assert {template.id for template in templates(family, held_out=held_out)} <= used, (split, family)
    for split in SPLITS:
        outcomes = Counter(o for dialogue in splits[split] for o in dialogue["meta"]["outcomes"])
        assert set(REPORT_OUTCOMES) <= set(outcomes), split
    train = Counter(o for dialogue in splits["train"] for o in dialogue["meta"]["outcomes"])
    assert {f"failed:{kind}" for kind in FAILURES} <= set(train)
    reports = [count for key, count in train.items() if key in REPORT_OUTCOMES]
    assert max(reports) < 1.6 * min(reports), "every outcome is common"
    failed = sum(count for key, count in train.items() if key.startswith("failed:"))
    assert 0.05 <= failed / (failed + sum(reports)) <= 0.08


def test_outcomes_of_each_check_partition_the_report_outcomes():
    assert sorted(o for check in CHECKS for o in outcomes_of(check)) == sorted(REPORT_OUTCOMES)


def test_frame_words_are_not_tied_to_a_check(splits):
    checks_of = {}
    for dialogue in splits["train"]:
        meta = dialogue["meta"]
        if meta["kind"] == "request":
            checks_of.setdefault(meta["templates"][0], set()).update(meta["checks"])
    assert len(checks_of) == len(templates("request", held_out=False))
    assert all(checks == set(CHECKS) for checks in checks_of.values())


@pytest.mark.parametrize("held_out", sorted(HELD_OUT))
def test_held_out_splits_share_no_template_or_site_with_train(splits, held_out):
    def used(split: str, key: str) -> set[str]:
        return {value for dialogue in splits[split] for value in dialogue["meta"][key]}

    def arguments(split: str) -> set[str]:
        return {
            turn["parameters"]["site"]
            for dialogue in splits[split]
            for turn in dialogue["conversations"]
            if turn["role"] == "tool"
        }

    assert not used(held_out, "templates") & used("train", "templates")
    assert not used(held_out, "sites") & (used("train", "sites") | arguments("train"))
    assert not arguments(held_out) & used("train", "sites")
    for split in ("dev", "test_seen"):
        assert used(split, "templates") <= used("train", "templates")
    assert used("train", "sites") & set(gazetteer(held_out=False))
    assert not used("train", "sites") & set(gazetteer(held_out=True))


def test_no_dialogue_is_in_two_splits(splits):
    seen: dict[str, str] = {}
    for split in SPLITS:
        keys = {json.dumps(dialogue["conversations"], ensure_ascii=False) for dialogue in splits[split]}
        assert not keys & seen.keys(), split
        seen.update(dict.fromkeys(keys, split))


def test_most_training_dialogues_carry_a_name_never_seen_before(splits):
    named = [dialogue["meta"] for dialogue in splits["train"] if dialogue["meta"]["sites"]]
    counts = Counter(site for meta in named for site in set(meta["sites"]))
    unique = sum(all(counts[site] == 1 for site in meta["sites"]) for meta in named)
    assert unique / len(named) > 0.7
    composed = Counter(
        site
        for dialogues in splits.values()
        for dialogue in dialogues
        for site, source in zip(dialogue["meta"]["sites"], dialogue["meta"]["site_sources"], strict=True)
        if source == "composed"
    )
    repeated = {site for site, count in composed.items() if count > 1}
    assert all(  # a composed name comes back only as the same site of a second request in one dialogue
        dialogue["meta"]["sites"] == [site, site]
        for dialogues in splits.values()
        for dialogue in dialogues
        for site in repeated & set(dialogue["meta"]["sites"])
    )


def test_noise_is_recorded_and_arguments_are_what_was_heard(splits):
    levels = Counter(dialogue["meta"]["noise"]["level"] for dialogue in splits["train"])
    assert abs(levels["none"] / SIZE - 0.6) < 0.03 and abs(levels["high"] / SIZE - 0.1) < 0.02
    for dialogue in splits["train"]:
        noise, turns = dialogue["meta"]["noise"], dialogue["conversations"]
        if noise["level"] == "none":
            assert not noise["ops"]
        for op in noise["ops"]:
            assert turns[op["turn"]]["role"] == "user" and op["new"] in turns[op["turn"]]["content"]
            assert op["op"] == "homophone" or op["span"] != "check"
            assert not (op["span"] == "date" and op["old"].isdigit())
        if dialogue["meta"]["kind"] == "request":
            site = turns[1]["parameters"]["site"]
            site_noise = any(op["span"] == "site" for op in noise["ops"])
            assert (site == dialogue["meta"]["sites"][0]) != site_noise


def test_dev_unseen_comes_last_and_leaves_the_other_splits_as_they_were(monkeypatch):
    config = GenerateConfig.for_size(seed=5, size=300)
    five = make_splits(config)
    monkeypatch.setattr(generate, "SPLITS", SPLITS[:-1])
    four = make_splits(config)
    assert SPLITS[-1] == "dev_unseen" and list(four) == list(SPLITS[:-1])
    assert four == {split: five[split] for split in four}


def composed(examples: list[Example]) -> set[str]:
    """The composed site names of `examples`."""
    pairs = (zip(e.meta["sites"], e.meta["site_sources"], strict=True) for e in examples)
    return {site for sites in pairs for site, source in sites if source == "composed"}


def test_more_training_dialogues_are_in_no_split_and_change_none():
    config = GenerateConfig.for_size(seed=5, size=300)
    splits = make_splits(config)
    more = make_splits(config, more=120)
    assert list(more) == [*SPLITS, MORE] and len(more[MORE]) == 120
    assert {split: more[split] for split in SPLITS} == splits
    earlier = {example.conversations for examples in splits.values() for example in examples}
    assert not earlier & {example.conversations for example in more[MORE]}
    assert composed(more[MORE]) and not composed(more[MORE]) & composed([e for s in splits.values() for e in s])
    frames = {template for example in splits["train"] for template in example.meta["templates"]}
    assert {template for example in more[MORE] for template in example.meta["templates"]} <= frames


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    for name in ("a", "b"):
        generate_splits(tmp_path / name, seed=3, size=50)
    generate_splits(tmp_path / "c", seed=4, size=50)
    for file in [*(f"{split}.jsonl" for split in SPLITS), CONFIG_FILE]:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    assert read(tmp_path / "a" / "train.jsonl") != read(tmp_path / "c" / "train.jsonl")


def test_cli_writes_every_split_and_prints_statistics(tmp_path):
    result = CliRunner().invoke(app, ["data", "generate", "--out", str(tmp_path / "d"), "--seed", "1", "--size", "40"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "d").iterdir()) == sorted(
        [*(f"{split}.jsonl" for split in SPLITS), CONFIG_FILE]
    )
    assert "test_unseen" in result.output and "人数检测" in result.output and "with noise" in result.output


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="--size must be at least 1"):
        generate_splits(tmp_path, seed=0, size=0)
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match=r"cannot write the training data into .*file"):
        generate_splits(blocker, seed=0, size=10)
    (tmp_path / "d" / "train.jsonl").mkdir(parents=True)
    with pytest.raises(UserError, match=r"Is a directory .*train\.jsonl"):
        generate_splits(tmp_path / "d", seed=0, size=10)

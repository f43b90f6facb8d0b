"""`inspector replay`: canned dialogues on recorded observations, readable diffs, JUnit, the shipped model."""

import io
import json
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agent.chatglm_format import read_dialogues, render_call, tools_message
from agent.cli import app
from agent.memory import Memory
from agent.replay import (
    DialogueResult,
    FileResult,
    RecordedCall,
    RecordedTools,
    Replayer,
    call_line,
    junit,
    summary,
)
from agent.session import DEFAULT_MODEL
from agent.state_machine import Agent
from tests.conftest import ROOT
from tests.scripted import ScriptedBackend
from tests.test_inspection_run import tiny_model  # noqa: F401  (a fixture)
from tools.catalog import build_registry, tool_descriptions
from tools.context import ToolContext

CANNED = sorted((ROOT / "tests" / "dialogues").glob("*.jsonl"))


def recorded_outputs(path) -> list[str]:
    """What a model that says exactly what was recorded writes, message after message, for a whole file."""
    outputs = []
    for dialogue in read_dialogues(path):
        for message in dialogue.conversations:
            if message.role == "tool":
                outputs.append(f"{message.name}\n{render_call(message.parameters)}")
            elif message.role == "assistant":
                outputs.append(f"\n{message.content}")
    return outputs


def echo_agent(path) -> Agent:
    outputs = iter(recorded_outputs(path))
    backend = ScriptedBackend(lambda conversation: next(outputs))
    return Agent(backend, RecordedTools(), Memory(tools_message(tool_descriptions()), lambda messages: 0, 10_000))


def test_the_repo_keeps_canned_dialogues_of_every_kind():
    names = {path.stem for path in CANNED}
    assert {"greeting", "people", "helmets", "equipment", "failures", "ask_back", "multi_turn"} <= names
    assert sum(len(read_dialogues(path)) for path in CANNED) >= 20


@pytest.mark.parametrize("path", CANNED, ids=lambda path: path.name)
def test_canned_dialogues_pass_when_the_model_says_what_was_recorded(path):
    """The recordings are self-consistent: every report is the one the rules write from its observations."""
    result = Replayer(echo_agent(path)).file(path)
    assert result.dialogues and not result.failed, "\n\n".join(r.diff for r in result.failed)


def test_recorded_work_orders_are_what_the_demo_database_answers():
    tools = build_registry(ToolContext())
    for path in CANNED:
        for dialogue in read_dialogues(path):
            for message in dialogue.conversations:
                if message.role == "tool" and message.name == "query_work_order":
                    assert tools.call(message.name, message.parameters) == message.observation, message


def altered_people(tmp_path):
    """people.jsonl with its first dialogue altered: another site in the first call, another report."""
    lines = (ROOT / "tests" / "dialogues" / "people.jsonl").read_text(encoding="utf-8").splitlines()
    dialogue = json.loads(lines[0])
    dialogue["conversations"][1]["parameters"]["site"] = "青岛"
    dialogue["conversations"][-1]["content"] = "[人数检测] 应到1人, 实到2人, 人数异常, 可能存在非法进入"
    altered = tmp_path / "people.jsonl"
    altered.write_text("\n".join([json.dumps(dialogue, ensure_ascii=False), *lines[1:]]) + "\n", encoding="utf-8")
    return altered


def assert_fails_readably(result) -> None:
    [failed] = result.failed
    assert failed.name == "people.jsonl #1 normal"
    diff = failed.diff.splitlines()
    assert diff[:2] == ["--- recorded", "+++ replayed"]
    assert " user 查查在济南工地2024-05-24人数嘛" in diff
    assert "-call query_work_order(site='青岛', check='人数检测', date='2024-05-24')" in diff
    assert "+call query_work_order(site='济南', check='人数检测', date='2024-05-24')" in diff
    assert "-reply [人数检测] 应到1人, 实到2人, 人数异常, 可能存在非法进入" in diff


def test_an_altered_dialogue_fails_with_a_readable_diff(tmp_path):
    result = Replayer(echo_agent(ROOT / "tests" / "dialogues" / "people.jsonl")).file(altered_people(tmp_path))
    assert_fails_readably(result)
    diff = result.failed[0].diff.splitlines()
    assert "+reply [人数检测] 应到1人, 实到1人, 无人缺勤, 正常出工" in diff
    assert any(line.startswith("+flagged done: the agent replied [人数检测] 无法完成") for line in diff)


def test_a_dialogue_that_cannot_be_replayed_is_a_failure_that_says_why(tmp_path):
    path = tmp_path / "broken.jsonl"
    rows = [
        {"conversations": [{"role": "user", "content": "你好"}, {"role": "user", "content": "在吗"}]},
        {"conversations": [{"role": "assistant", "content": "您好"}]},
        {"conversations": [{"role": "system", "content": "x"}]},
    ]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    result = Replayer(echo_agent(path)).file(path)
    assert [r.diff for r in result.dialogues] == [
        "cannot replay broken.jsonl #1: the user turn '你好' has no recorded reply",
        "cannot replay broken.jsonl #2: a recorded assistant turn comes before any user turn",
        "cannot replay broken.jsonl #3: no user turn",
    ]


def test_recorded_tools_validate_like_the_catalog_and_serve_in_order():
    tools = RecordedTools()
    first = RecordedCall("query_work_order", {"site": "济南", "check": "人数检测"}, {"expected_workers": 3})
    second = RecordedCall("count_people", {"site": "济南"}, {"image": "a.jpg", "persons": 3})
    tools.pending = [first, second]
    assert "回放记录中此处没有这次调用" in tools.call("count_people", {"site": "济南"})["error"]
    assert tools.call("query_work_order", {"site": "济南", "check": "跳舞"})["error"].startswith(
        "工具 query_work_order 的参数有误"
    )
    assert tools.call("query_work_order", {"check": "人数检测", "site": "济南"}) == {"expected_workers": 3}
    assert tools.call("count_people", {"site": "济南"}) == {"image": "a.jpg", "persons": 3}
    assert tools.descriptions() == tool_descriptions()


def test_call_lines_follow_the_tools_parameter_order():
    assert call_line("query_work_order", {"date": "今天", "check": "人数检测", "site": "济南"}) == (
        "call query_work_order(site='济南', check='人数检测', date='今天')"
    )
    assert call_line("launch", {"b": 1, "a": None}) == "call launch(b=1, a=None)"


def test_summary_and_junit(tmp_path):
    files = [
        FileResult(tmp_path / "a.jsonl", [DialogueResult("a.jsonl #1", True, "", 0.5)]),
        FileResult(tmp_path / "b.jsonl", [DialogueResult("b.jsonl #1 x", False, "-reply a\n+reply b\x00", 0.25)] * 2),
    ]
    console = Console(width=150, record=True, file=io.StringIO())
    console.print(summary(files))
    text = console.export_text()
    assert "100.0 %" in text and "0.0 %" in text and "33.3 %" in text and "total" in text
    path = tmp_path / "junit.xml"
    junit(files).write(path, encoding="utf-8", xml_declaration=True)
    root = ET.parse(path).getroot()
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", "3", "2")
    suite = root.findall("testsuite")[1]
    assert suite.get("failures") == "2" and suite.get("time") == "0.500"
    case = suite.find("testcase")
    assert case.get("classname") == "b" and case.find("failure").text == "-reply a\n+reply b\\x00"


def test_inspector_replay_exits_1_prints_the_diff_and_writes_junit(tmp_path, tiny_model):  # noqa: F811
    path = tmp_path / "greeting.jsonl"
    path.write_text(
        (ROOT / "tests" / "dialogues" / "greeting.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n"
    )
    report = tmp_path / "ci" / "junit.xml"
    args = ["replay", str(path), "--model", str(tiny_model), "--device", "cpu", "--junit", str(report)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "FAILED greeting.jsonl #1 hello" in result.output and "-reply 您好,我是电网大模型的语言核心" in result.output
    assert ET.parse(report).getroot().get("failures") == "1"
    missing = CliRunner().invoke(app, ["replay", str(tmp_path / "nope.jsonl"), "--model", str(tiny_model)])
    assert missing.exit_code != 0 and "no such file" in str(missing.exception)


@pytest.fixture(scope="module")
def shipped_replayer():
    if not (DEFAULT_MODEL / "config.json").is_file():
        pytest.skip(f"no shipped default model at {DEFAULT_MODEL} (build it with `inspector train default`)")
    from agent.session import SessionOptions, open_agent

    return Replayer(open_agent(SessionOptions(device="cpu")))


def test_the_shipped_model_passes_the_canned_dialogues(shipped_replayer):
    failed = [result for path in CANNED for result in shipped_replayer.file(path).failed]
    assert not failed, "\n\n".join(f"{r.name}\n{r.diff}" for r in failed)

"""Evaluation scoring with a scripted model: every BFCL-style error label, fidelity, noise groups, the CLI table."""

import json

import pytest

from agent import evaluate as ev
from agent.chatglm_format import ToolCall, render_call
from agent.eval_report import markdown
from tests.scripted import ScriptedBackend

GOLD = ToolCall("query_work_order", {"site": "济南", "check": "人数检测"})


def call_text(name: str, arguments: dict) -> str:
    return f"{name}\n{render_call(arguments)}"


@pytest.mark.parametrize(
    ("output", "label"),
    [
        (call_text("query_work_order", {"site": "济南", "check": "人数检测"}), "ok"),
        (call_text("count_people", {"site": "济南"}), "wrong_function"),
        (call_text("query_work_order", {"site": "济南"}), "invalid_call"),  # check is required by the schema
        (call_text("query_work_order", {"site": "济南", "check": "人数检测", "date": "今天"}), "unexpected_argument"),
        (call_text("query_work_order", {"site": "济", "check": "人数检测"}), "wrong_value"),
        (call_text("query_work_order", {"site": "济南", "check": "跑步"}), "invalid_call"),
        (call_text("launch_rocket", {}), "invalid_call"),
        ("query_work_order\n```python\ntool_call(site=济南)\n```", "unparseable"),
        ("\n您好", "no_call"),
    ],
)
def test_call_labels(output, label):
    assert ev.judge(GOLD, output, ev.tool_schemas()) == label


def test_missing_argument_label():
    gold = ToolCall("query_work_order", {"site": "济南", "check": "人数检测", "date": "今天"})
    output = call_text("query_work_order", {"site": "济南", "check": "人数检测"})
    assert ev.judge(gold, output, ev.tool_schemas()) == "missing_argument"


def test_text_labels():
    schemas = ev.tool_schemas()
    assert ev.judge("您好", "\n 您好", schemas) == "ok"
    assert ev.judge("您好", "\n您好啊", schemas) == "wrong_text"
    assert ev.judge("您好", call_text("count_people", {"site": "x"}), schemas) == "unexpected_call"


def test_fidelity_checks_numbers_and_verdict_not_spacing():
    gold = "[人数检测] 应到47人, 实到34人, 有人缺勤"
    assert ev.faithful(gold, "[人数检测] 应到47人,实到34人, 有人缺勤")
    assert ev.faithful("[安全检查] 现场无人施工", "\n [安全检查] 现场无人施工")
    assert not ev.faithful(gold, "[人数检测] 应到47人, 实到43人, 有人缺勤")
    assert not ev.faithful(gold, "[人数检测] 应到47人, 实到34人, 无人缺勤, 正常出工")


def dialogue(noise: str) -> dict:
    return {
        "conversations": [
            {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "您好,我是电网大模型的语言核心,用于拆解执行行为库并向您汇报结果"},
            {"role": "user", "content": "查查在济南工地人数嘛"},
            {
                "role": "tool",
                "name": "query_work_order",
                "parameters": GOLD.arguments,
                "observation": {"site": "济南工地", "expected_workers": 47},
            },
            {"role": "tool", "name": "count_people", "parameters": {"site": "济南"}, "observation": {"persons": 34}},
            {"role": "assistant", "content": "[人数检测] 应到47人, 实到34人, 有人缺勤"},
        ],
        "meta": {"noise": {"level": noise, "ops": []}},
    }


def test_items_steps_and_a_perfect_and_a_wrong_model(tmp_path):
    path = tmp_path / "test_unseen.jsonl"
    path.write_text("".join(json.dumps(dialogue(n), ensure_ascii=False) + "\n" for n in ("none", "high")), "utf-8")
    items = ev.items_of(path)
    assert [i.step for i in items[:4]] == ["greet", "parse", "parse", "summarize"]
    assert {i.noise for i in items} == {"none", "high"}

    def perfect(conversation):
        item = next(i for i in items if i.history == conversation)
        gold = item.gold
        return call_text(gold.name, gold.arguments) if isinstance(gold, ToolCall) else f"\n{gold}"

    summary = ev.summarize(ev.run(ScriptedBackend(perfect), items))
    assert summary["call_exact"] == summary["report_exact"] == summary["tool_selection"] == 1.0
    assert summary["errors"] == {}
    assert summary["report_exact_by_outcome"] == {"people_absent": {"items": 2, "wrong": 0}}

    wrong = ev.run(ScriptedBackend(lambda conversation: "\n[人数检测] 应到47人, 实到35人, 有人缺勤"), items)
    summary = ev.summarize(wrong)
    assert summary["call_exact"] == 0.0 and summary["report_exact"] == 0.0 and summary["report_fidelity"] == 0.0
    assert summary["errors"] == {"no_call": 4, "wrong_text": 4}
    assert summary["report_exact_by_outcome"] == {"people_absent": {"items": 2, "wrong": 2}}
    results = {
        "model": "m",
        "split": "test_unseen",
        "items": len(items),
        "variants": {
            "model": {
                "overall": summary,
                "by_noise": ev.by_noise(wrong),
                "latency": ev.latencies(ScriptedBackend(perfect), items, 2),
            }
        },
    }
    table = markdown(results)
    assert "| call exact match | 0.0 % |" in table and "parse latency p50" in table and "noise high" in table
    assert "| model: wrong reports by outcome | people_absent 2 of 2 |" in table

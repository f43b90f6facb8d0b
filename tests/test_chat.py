"""The terminal chat end to end with a scripted model: panels, commands, audit records, clean endings."""

import io
import json

from rich.console import Console

from agent.audit import AuditLog
from agent.chat import Chat, input_lines
from tests.test_state_machine import GREETING, agent, call


def chat_session(tmp_path, *outputs):
    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    session = Chat(console, AuditLog(tmp_path / "audit.jsonl"), evidence_dir=None)
    bot, _ = agent(*outputs)
    bot.observer = session.observe
    return session, bot, console


def test_piped_chat_runs_turns_and_commands(tmp_path):
    session, bot, console = chat_session(
        tmp_path,
        f"\n{GREETING}",
        call("query_work_order", site="济南", check="人数检测"),
        call("count_people", site="济南"),
        "\n[人数检测] 应到47人, 实到34人, 无人缺勤",
    )
    lines = ["你好\n", "查查在济南工地人数嘛\n", "/history\n", "/reset\n", "/nonsense\n", "/exit\n", "never read\n"]
    session.run(bot, input_lines(console, io.StringIO("".join(lines)), interactive=False), echo=True)
    out = console.file.getvalue()
    assert GREETING in out
    assert "query_work_order(site='济南', check='人数检测')" in out and '"persons": 34' in out
    assert "[人数检测] 应到47人, 实到34人, 有人缺勤" in out and "报告已按工具结果校正" in out
    assert "对话记忆已清空" in out and "未知命令 /nonsense" in out and "再见" in out
    assert "never read" not in out and bot.memory.turns == []
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["state"] for r in records] == ["greet", "done"]
    report = records[1]
    assert report["input"] == "查查在济南工地人数嘛" and report["flagged"] is True
    assert report["steps"][0]["output"].startswith("query_work_order")
    assert report["tools"][1]["observation"] == {"image": "images/济南.jpg", "persons": 34}
    assert report["verdict"]["model_report"] == "[人数检测] 应到47人, 实到34人, 无人缺勤"
    assert report["seconds"] >= 0


def test_end_of_input_and_ctrl_c_end_cleanly(tmp_path):
    session, bot, console = chat_session(tmp_path)

    def interrupted():
        yield ""
        raise KeyboardInterrupt

    session.run(bot, interrupted(), echo=False)
    assert console.file.getvalue().rstrip().endswith("再见")
    session.run(bot, iter([]), echo=False)
    records = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(records[0])["state"] == "rejected"

"""The chat end to end: the console script, piped stdin, the shipped model, the real tools on the demo data.

The report's numbers must be the database's and the detector's: the test asks the tools directly.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from agent.session import DEFAULT_MODEL
from prompts import load

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL / "model.safetensors").is_file(), reason="models/default absent")


def test_a_greeting_a_head_count_a_greeting_and_a_helmet_check_through_piped_stdin(tmp_path):
    from agent.reports import render
    from agent.session import SessionOptions, today_for
    from tools.catalog import build_registry
    from tools.context import ToolContext

    inspector = Path(sys.executable).with_name("inspector")
    audit = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [inspector, "chat", "--audit", audit, "--evidence", tmp_path / "evidence", "--device", "cpu"],
        input="你好\n查查在济南工地人数嘛\n你是谁\n查查在济南工地安全帽嘛\n/exit\n",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert load("reports")["greeting"] in done.stdout

    day, _ = today_for(SessionOptions())
    tools = build_registry(ToolContext(today=lambda: day))
    order = tools.call("query_work_order", {"site": "济南", "check": "人数检测"})
    people = tools.call("count_people", {"site": "济南"})
    expected = render("人数检测", order, people)
    assert order["site"] == "济南工地" and "error" not in people
    assert expected in done.stdout
    assert "query_work_order(site='济南', check='人数检测')" in done.stdout
    assert done.stdout.count(load("reports")["greeting"]) == 2, "the greeting after a check is answered as one"
    helmets = tools.call("check_helmets", {"site": "济南"})
    assert (
        render("安全检查", tools.call("query_work_order", {"site": "济南", "check": "安全检查"}), helmets)
        in done.stdout
    )
    assert "check_helmets(site='济南')" in done.stdout, "a request after a finished check is called as one alone"
    assert list((tmp_path / "evidence").glob("*.jpg")), "the head count left no evidence image"
    assert len(audit.read_text(encoding="utf-8").splitlines()) == 4

"""`inspector run`: manifests, durable results, resuming (after a real SIGKILL too), the report, bound images.

Most tests drive the product's `Run` with a scripted model that inspects as the training data does and
fake tools; two run it in a subprocess that is killed mid-run: the scripted run (items end ok, so every item
must be recorded exactly once) and the real `inspector run` on a tiny random GLM (its garbage ends every item
failed, so each rerun retries them all and nothing may be lost).
"""

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field
from rich.console import Console
from typer.testing import CliRunner

from agent.chatglm_format import Message, render_call, tools_message
from agent.cli import app
from agent.errors import ConfigError, UserError
from agent.inspection_run import REPORT_FILE, RESULTS_FILE, ItemTools, Run, RunConfig, catalog_tools
from agent.memory import Memory
from agent.reports import Check, render
from agent.run_items import folder_items, manifest_items
from agent.run_report import markdown
from agent.run_results import Results
from agent.session import SessionOptions
from agent.state_machine import Agent
from tests.conftest import ROOT, SHARED
from tests.scripted import ScriptedBackend
from tools.context import DEMO_DATABASE, ToolContext
from tools.observations import Failure
from tools.registry import Registry

ORDERS = {"济南": 4, "青岛": 0, "淄博": 3}
PEOPLE = {"济南": 4, "青岛": 2, "淄博": 1}
REQUEST = re.compile(r"查查在(?P<site>.+?)(?P<date>\d{4}-\d{2}-\d{2})?人数嘛")


def query_work_order(
    ctx: object, site: Annotated[str, Field(description="站点")], check: Check, date: str | None = None
):
    """查询工单"""
    if site not in ORDERS:
        raise Failure("unknown_site", site=site)
    return {"site": f"{site}工地", "date": date or "2024-05-03", "check": check, "expected_workers": ORDERS[site]}


def count_people(ctx: object, site: str | None = None, date: str | None = None, image: str | None = None):
    """统计人数"""
    return {"image": f"images/{site}.jpg", "persons": PEOPLE[site]}


def fake_tools(item=None, evidence=None) -> Registry:
    tools = Registry(context=None)
    for tool in (query_work_order, count_people):
        tools.add(tool)
    return tools


def call(name: str, **arguments) -> str:
    return f"{name}\n{render_call(arguments)}"


def inspector(conversation: list[Message]) -> str:
    """A model that inspects as the training data does: work order, detector, the rule's report."""
    last_user = max(i for i, message in enumerate(conversation) if message.role == "user")
    said = REQUEST.fullmatch(conversation[last_user].content)
    if said is None:
        return "\n请问要检查哪个站点?"
    date = {"date": said["date"]} if said["date"] else {}
    observed = [json.loads(m.content) for m in conversation[last_user + 1 :] if m.role == "observation"]
    if not observed:
        return call("query_work_order", site=said["site"], check="人数检测", **date)
    if "error" in observed[0]:
        return "\n" + render("人数检测", observed[0], None)
    if len(observed) == 1:
        return call("count_people", site=said["site"], **date)
    return "\n" + render("人数检测", observed[0], observed[1])


def scripted_agent(delay: float = 0.0) -> tuple[Agent, ScriptedBackend]:
    def slow_inspector(conversation: list[Message]) -> str:
        time.sleep(delay)
        return inspector(conversation)

    backend = ScriptedBackend(slow_inspector)
    memory = Memory(tools_message(fake_tools().descriptions()), lambda messages: 0, 10_000)
    return Agent(backend, fake_tools(), memory), backend


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RESULTS_FILE).read_text(encoding="utf-8").splitlines()]


# --- items ------------------------------------------------------------------------------------------------


def test_manifest_rows_become_items(tmp_path):
    manifest = write(
        tmp_path / "in" / "manifest.csv",
        "site,image,date,request\n"
        "济南,,2024-05-24,\n"
        "青岛,photos/20240503_083000.jpg,,\n"
        ",photos/x.jpg,,请看看济南这张图里有几个人\n"
        ",photos/y.jpg,,\n"
        "济南,,2024-05-24,\n",
    )
    items = manifest_items(manifest, "人数检测")
    assert [item.where for item in items] == ["manifest.csv:2", "manifest.csv:3", "manifest.csv:4", "manifest.csv:5"]
    first, second, third, bad = items
    assert (first.request, first.date, first.problem) == ("查查在济南2024-05-24人数嘛", "2024-05-24", None)
    assert second.image == str((tmp_path / "in" / "photos" / "20240503_083000.jpg").resolve())
    assert second.date == "2024-05-03" and second.request == "查查在青岛2024-05-03人数嘛"
    assert third.request == "请看看济南这张图里有几个人" and third.date is None and third.site is None
    assert bad.problem == "names no site; give a site or a request"
    assert manifest_items(manifest, "安全检查")[0].request == "检测在2024-05-24济南的安全帽佩戴情况啊"
    assert [i.key for i in manifest_items(manifest, "人数检测")] == [i.key for i in items]  # stable keys


def test_jsonl_manifest_lines_that_cannot_run_are_failing_items(tmp_path):
    manifest = write(
        tmp_path / "m.jsonl",
        '{"site": "淄博", "date": "2024-05-22"}\n\n{"site": \n[1]\n{"site": "济南", "when": "今天"}\n{"site": 3}\n',
    )
    items = manifest_items(manifest, "设备检查")
    assert items[0].request == "请输出2024-05-22淄博的设备检查结果"
    assert [(i.where, i.problem) for i in items[1:]] == [
        ("m.jsonl:3", "not JSON (Expecting value)"),
        ("m.jsonl:4", "not a JSON object"),
        ("m.jsonl:5", "unknown keys when; keys are site, image, date, request"),
        ("m.jsonl:6", "values must be strings"),
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "site,imgae\n济南,x.jpg\n", "unknown: imgae"),
        ("m.csv", "date\n2024-05-03\n", "site, image or request at least"),
        ("m.csv", "site\n", "no rows"),
        ("m.txt", "济南\n", "a .csv or .jsonl file"),
    ],
)
def test_a_manifest_that_is_not_one_is_a_clear_error(tmp_path, name, text, message):
    with pytest.raises(UserError, match=message):
        manifest_items(write(tmp_path / name, text), "人数检测")


def test_a_folder_of_images_is_one_item_per_image(tmp_path):
    for name in ("b/20240505_124500.jpg", "a.png", "notes.txt"):
        write(tmp_path / "imgs" / name, "x")
    items = folder_items(tmp_path / "imgs", "济南工地", "人数检测")
    assert [Path(item.image).name for item in items] == ["a.png", "20240505_124500.jpg"]
    assert [item.request for item in items] == ["查查在济南工地人数嘛", "查查在济南工地2024-05-05人数嘛"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        folder_items(tmp_path / "empty", "济南", "人数检测")
    with pytest.raises(UserError, match="no such folder"):
        folder_items(tmp_path / "none", "济南", "人数检测")


# --- results.jsonl ------------------------------------------------------------------------------------------


def test_results_drop_a_line_cut_by_a_kill_and_refuse_a_corrupt_one(tmp_path):
    path = tmp_path / RESULTS_FILE
    results = Results(path)
    results.append({"key": "a", "status": "failed"})
    results.append({"key": "a", "status": "ok"})
    results.append({"key": "b", "status": "failed"})
    with path.open("ab") as file:
        file.write(b'{"key": "c", "sta')
    reopened = Results(path)
    assert reopened.repaired and reopened.done() == {"a"} and reopened.latest()["b"]["status"] == "failed"
    assert path.read_bytes().endswith(b'"failed"}\n') and not Results(path).repaired
    path.write_text('{"key": "a", "status": "ok"}\nnot json\n{"key": "b", "status": "ok"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"results.jsonl:2 is not a result record"):
        Results(path)


def test_the_run_configuration_round_trips_guards_resuming_and_keeps_its_today(tmp_path):
    options = SessionOptions(model=Path("/m"), detector=Path("/x/../detector.toml"))
    config = RunConfig.of(options, None)
    assert config == RunConfig("/m", None, str(DEMO_DATABASE), "/detector.toml", "2024-05-31")  # the demo's snapshot
    assert RunConfig.load(tmp_path) is None
    config.save(tmp_path)
    assert RunConfig.load(tmp_path) == config and RunConfig.of(options, config) == config
    earlier = replace(config, today="2024-05-03")
    assert RunConfig.of(options, earlier) == earlier  # a resumed run keeps its today
    with pytest.raises(ConfigError, match="made with today 2024-05-31"):
        RunConfig.of(replace(options, today=dt.date(2024, 5, 30)), config)
    with pytest.raises(ConfigError, match="made with model /m"):
        RunConfig.of(replace(options, model=Path("/other")), config)
    (tmp_path / "run.json").write_text('{"model": "/m"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a run configuration"):
        RunConfig.load(tmp_path)


# --- the run ----------------------------------------------------------------------------------------------------


def test_a_run_records_every_item_and_a_rerun_retries_only_the_failed(tmp_path):
    manifest = write(tmp_path / "m.csv", "site,date\n济南,2024-05-24\n青岛,\n淄博,2024-05-22\n火星,\n,2024-05-01\n")
    items = manifest_items(manifest, "人数检测")
    out = tmp_path / "out"
    out.mkdir()
    agent, backend = scripted_agent()
    Run(agent, Results(out / RESULTS_FILE), fake_tools, audit=None).run(items, Console(quiet=True))
    first = records(out)
    assert [(r["site"], r["status"], r["state"]) for r in first] == [
        ("济南", "ok", "done"),
        ("青岛", "ok", "done"),
        ("淄博", "ok", "done"),
        ("火星", "failed", "done"),
        (None, "failed", None),
    ]
    jinan, qingdao, zibo, mars, no_site = first
    assert jinan["reply"] == "[人数检测] 应到4人, 实到4人, 无人缺勤, 正常出工" and jinan["outcome"] == "people_normal"
    assert [t["name"] for t in jinan["tools"]] == ["query_work_order", "count_people"]
    assert jinan["inspected"] == {"site": "济南工地", "date": "2024-05-24", "image": "images/济南.jpg"}
    assert qingdao["outcome"] == "people_no_order" and zibo["outcome"] == "people_absent"
    assert mars["error"] == "query_work_order: 未找到站点“火星”" and mars["reply"].startswith("[人数检测] 无法完成")
    assert no_site["error"] == "names no site; give a site or a request"

    report = markdown(first)
    assert "5 items: 3 ok, 2 failed; anomalies: 2; flagged (report corrected by the verifier): 0." in report
    assert "| 济南工地 | 1 | 1 | 0 | 0 | 0 |" in report and "| 青岛工地 | 1 | 1 | 0 | 0 | 1 |" in report
    assert (
        "| 青岛工地 | 2024-05-03 | 青岛.jpg | [人数检测] 应到0人, 实到2人, 无工单出工, 可能存在非法进入 | — |" in report
    )
    assert "| m.csv:5 | 查查在火星人数嘛 | query_work_order: 未找到站点“火星” |" in report

    calls_before = len(backend.seen)
    results = Results(out / RESULTS_FILE)
    todo = [item for item in items if item.key not in results.done()]
    Run(agent, results, fake_tools, audit=None).run(todo, Console(quiet=True))
    assert [item.site for item in todo] == ["火星", None]
    assert len(backend.seen) - calls_before == 2  # 火星: the call, then the report; the bad row reaches no model
    assert len(records(out)) == 7


def test_an_item_image_binds_the_detection_calls_and_a_bad_image_fails_the_item(tmp_path):
    broken = write(tmp_path / "photos" / "20240524_121500.jpg", "not a jpeg")
    manifest = write(tmp_path / "m.csv", f"site,image\n济南,{broken}\n")
    items = manifest_items(manifest, "人数检测")
    out = tmp_path / "out"
    out.mkdir()
    agent, _ = scripted_agent()
    tools = catalog_tools(ToolContext(image_roots=(broken.parent,)))
    Run(agent, Results(out / RESULTS_FILE), tools, audit=None).run(items, Console(quiet=True))
    [record] = records(out)
    order, people = record["tools"]
    assert order["observation"]["site"] == "济南工地" and order["observation"]["date"] == "2024-05-24"
    assert people["arguments"] == {"site": "济南", "date": "2024-05-24"}  # as the model asked
    assert people["observation"]["error"] == f"图像无法读取: {broken.resolve()}"  # but about the item's image
    assert record["status"] == "failed" and record["error"].startswith("count_people: 图像无法读取")
    assert ItemTools(ToolContext(), image=None).call("count_people", {"site": "火星"})["error"] == "未找到站点“火星”"


def test_an_item_site_and_date_bind_the_work_order_whatever_the_model_read():
    tools = ItemTools(ToolContext(), image=None, site="济南", date="2024-05-24")
    misread = {"site": "济", "check": "人数检测", "date": "2024-04-05"}
    order = tools.call("query_work_order", misread)
    assert (order["site"], order["date"], order["check"]) == ("济南工地", "2024-05-24", "人数检测")
    assert tools.call("count_people", {"site": "火星"})["image"] == "images/济南工地/20240524_121500.jpg"
    assert ItemTools(ToolContext(), image=None).call("query_work_order", misread)["error"].startswith("站点“济”不唯一")


def test_inspector_run_options_and_a_model_that_will_not_open(tmp_path):
    manifest = write(tmp_path / "m.csv", "site\n济南\n")
    out = tmp_path / "out"
    both = CliRunner().invoke(app, ["run", "--out", str(out), "--manifest", str(manifest), "--images", str(tmp_path)])
    assert isinstance(both.exception, UserError) and "either --manifest" in str(both.exception)
    alone = CliRunner().invoke(app, ["run", "--out", str(out), "--images", str(tmp_path)])
    assert isinstance(alone.exception, UserError)
    missing = CliRunner().invoke(app, ["run", "--out", str(out), "--manifest", str(manifest), "--model", str(tmp_path)])
    assert isinstance(missing.exception, ConfigError)
    assert not (out / "run.json").exists()  # nothing ran: a rerun with the right model is not refused


# --- killed mid-run ------------------------------------------------------------------------------------------------


def run_scripted(manifest: str, out: str, delay: str) -> None:
    """The scripted run as a program (for the kill test): resumes like `inspector run`."""
    items = manifest_items(Path(manifest), "人数检测")
    results = Results(Path(out) / RESULTS_FILE)
    agent, _ = scripted_agent(float(delay))
    todo = [i for i in items if i.key not in results.done()]
    Run(agent, results, fake_tools, audit=None, batch_size=2).run(todo, Console())


def kill_when(process: subprocess.Popen, results: Path, lines: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if results.is_file() and results.read_bytes().count(b"\n") >= lines:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.02)
    pytest.fail(f"the run ended or stalled before {lines} results were written")


def test_a_run_killed_mid_run_resumes_without_losing_or_repeating_items(tmp_path):
    sites = list(ORDERS) * 4
    manifest = write(
        tmp_path / "m.csv", "site,date\n" + "".join(f"{s},2024-05-{i + 1:02d}\n" for i, s in enumerate(sites))
    )
    out = tmp_path / "out"
    out.mkdir()
    program = [sys.executable, "-m", "tests.test_inspection_run", str(manifest), str(out), "0.05"]
    kill_when(
        subprocess.Popen(program, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out / RESULTS_FILE, 3
    )
    assert 3 <= len(Results(out / RESULTS_FILE).records) < len(sites)
    subprocess.run(program, cwd=ROOT, check=True, capture_output=True)
    keys = [record["key"] for record in records(out)]
    assert sorted(keys) == sorted(item.key for item in manifest_items(manifest, "人数检测"))
    assert all(record["status"] == "ok" for record in records(out))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny random GLM with ChatGLM3's tokenizer: it writes garbage, so every item fails, quickly."""
    from agent.tokenizer import GLMTokenizer
    from tests.glm_tiny import tiny_glm

    tokenizer = SHARED / "chatglm3" / "tokenizer.model"
    if not tokenizer.is_file():
        pytest.skip(f"the ChatGLM3 tokenizer is not at {tokenizer}")
    folder = tmp_path_factory.mktemp("tiny")
    tiny_glm(GLMTokenizer.load(tokenizer).vocab_size, seed=0).save_pretrained(folder)
    shutil.copy(tokenizer, folder / "tokenizer.model")
    return folder


def test_inspector_run_killed_and_rerun_loses_nothing_and_exits_1(tmp_path, tiny_model):
    manifest = write(tmp_path / "m.csv", "site,date\n济南,2024-05-24\n青岛,2024-05-26\n,\n")
    out = tmp_path / "out"
    command = [str(ROOT / ".venv" / "bin" / "inspector"), "run", "--manifest", str(manifest), "--out", str(out)]
    command += ["--model", str(tiny_model), "--device", "cpu", "--audit", str(tmp_path / "audit.jsonl")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "COLUMNS": "200"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(process, out / RESULTS_FILE, 1)
    before = len(Results(out / RESULTS_FILE).records)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 items: 0 done, 3 to run" in done.stdout
    final = records(out)
    assert len(final) == before + 3 and all(record["status"] == "failed" for record in final)
    report = (out / REPORT_FILE).read_text(encoding="utf-8")
    assert "3 items: 0 ok, 3 failed" in report and "names no site" in report
    saved = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert saved["model"] == str(tiny_model.resolve()) and saved["today"] == "2024-05-31"


if __name__ == "__main__":
    run_scripted(*sys.argv[1:])

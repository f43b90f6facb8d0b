"""The benchmark scripts of bench/ run end to end on tiny inputs and write their JSON (no timings asserted).

Each script runs in this process as `python bench/<script>.py` would run it, on a tiny random GLM whose
every message ends at once (so each model step is one forward pass) and a little generated data.
"""

import json
import re
import runpy
import shutil
import sys

import pytest

from tests.conftest import ROOT, SHARED

BENCH = ROOT / "bench"
SCRIPTS = sorted(path.stem for path in BENCH.glob("*.py") if path.stem != "common")
COMMON_PARSER = re.compile(r"\bparser\(\s*__doc__")  # bench/common.py's parser, --out included
MEASUREMENTS = ("agent_latency", "run_throughput", "accuracy", "ptuning_cpu", "gpu_6b", "memory", "span_bonus")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from training_data.generate import generate_splits

    folder = tmp_path_factory.mktemp("data")
    generate_splits(folder, seed=0, size=16)
    return folder


@pytest.fixture(scope="module")
def quiet_model(tmp_path_factory):
    """A tiny random GLM with ChatGLM3's tokenizer, prompted without the tools' system message like the shipped
    default, whose every message ends at once: only the final norm's first feature reaches the output layer,
    which maps it to eos (positive) or <|user|> (negative), both stop tokens."""
    import torch

    from agent.prompting import Prompting
    from agent.tokenizer import GLMTokenizer
    from tests.glm_tiny import tiny_glm

    tokenizer_file = SHARED / "chatglm3" / "tokenizer.model"
    if not tokenizer_file.is_file():
        pytest.skip(f"the ChatGLM3 tokenizer is not at {tokenizer_file}")
    tokenizer = GLMTokenizer.load(tokenizer_file)
    model = tiny_glm(tokenizer.vocab_size)
    with torch.no_grad():
        model.model.norm.weight.zero_()[0] = 1
        model.lm_head.weight.zero_()
        model.lm_head.weight[tokenizer.eos_id, 0] = 1
        model.lm_head.weight[tokenizer.role("user"), 0] = -1
    folder = tmp_path_factory.mktemp("quiet")
    model.save_pretrained(folder)
    shutil.copy(tokenizer_file, folder / "tokenizer.model")
    Prompting(tools_in_system=False).save(folder)
    return folder


@pytest.fixture(scope="module")
def people_detector(tmp_path_factory):
    """The shipped detector's person model alone (the helmet model is the slow one)."""
    from tools.context import DEFAULT_DETECTOR
    from tools.detector_config import DetectorConfig, load_config, save_config, weights_path

    [spec] = [spec for spec in load_config(DEFAULT_DETECTOR).models if "person" in spec.classes.values()]
    path = tmp_path_factory.mktemp("detector") / "people.json"
    weights = str(weights_path(spec, DEFAULT_DETECTOR))
    save_config(DetectorConfig(models=(spec.model_copy(update={"weights": weights}),)), path)
    return path


def run_script(name, *arguments, monkeypatch):
    """Run bench/<name>.py as its own `__main__`, with `arguments` as its command line."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", [str(BENCH / f"{name}.py"), *map(str, arguments)])
    runpy.run_path(str(BENCH / f"{name}.py"), run_name="__main__")


def written(path):
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["machine"]["command"].startswith("python ") and report["machine"]["versions"]["torch"]
    return report


def test_there_is_a_script_per_measurement():
    assert set(MEASUREMENTS) <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_help(name, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        run_script(name, "--help", monkeypatch=monkeypatch)
    assert exited.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith(f"usage: {name}.py")
    assert name not in MEASUREMENTS or f"runs/bench/{name}.json" in usage


@pytest.mark.parametrize("name", [name for name in SCRIPTS if COMMON_PARSER.search((BENCH / f"{name}.py").read_text())])
def test_a_folder_given_as_out_is_refused_before_any_work(name, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        run_script(name, "--out", tmp_path, monkeypatch=monkeypatch)
    assert exited.value.code == 2 and "is a folder" in capsys.readouterr().err


def test_agent_latency(tmp_path, data, quiet_model, people_detector, monkeypatch):
    out = tmp_path / "latency.json"
    arguments = ["--model", quiet_model, "--data", data, "--requests", 3, "--sites", 1]
    run_script("agent_latency", *arguments, "--detector", people_detector, "--out", out, monkeypatch=monkeypatch)
    report = written(out)
    assert report["requests"] == 3 and sum(report["outcomes"].values()) == 3
    latency = report["latency"]
    assert latency["tool count_people"]["n"] == 1 and latency["tool query_work_order"]["n"] == 1
    assert sum(row["n"] for name, row in latency.items() if name.startswith("step ")) >= 3


def test_run_throughput(tmp_path, quiet_model, monkeypatch):
    out = tmp_path / "throughput.json"
    run_script(
        "run_throughput", "--model", quiet_model, "--images", 2, "--rounds", 2, "--out", out, monkeypatch=monkeypatch
    )
    report = written(out)
    assert [r["first"] for r in report["rounds"]] == ["bare", "run"]
    assert report["ratio"]["target"] == 1.15 and report["ratio"]["run_to_bare"] > 0
    assert all(r["ok"] == 0 for r in report["rounds"])  # a model that says nothing inspects nothing


def test_accuracy(tmp_path, data, quiet_model, monkeypatch):
    out = tmp_path / "accuracy.json"
    arguments = ["--model", quiet_model, "--data", data, "--limit", 3, "--latency-samples", 1, "--out", out]
    run_script("accuracy", *arguments, "--splits", "test_unseen", monkeypatch=monkeypatch)
    report = written(out)
    assert report["splits"]["test_unseen"]["items"] == 3
    assert (tmp_path / "accuracy" / "test_unseen" / "eval.md").is_file()


@pytest.mark.parametrize("split", ["dev", "dev_unseen"])
def test_span_bonus(tmp_path, data, quiet_model, monkeypatch, split):
    out = tmp_path / "span_bonus.json"
    arguments = ["--model", quiet_model, "--data", data, "--split", split, "--limit", 2, "--bonus", 0, 1, "--out", out]
    run_script("span_bonus", *arguments, monkeypatch=monkeypatch)
    report = written(out)
    assert [r["bonus"] for r in report["results"]] == [0, 1] and report["results"][0]["items"] == 2
    assert report["split"] == split


def test_span_bonus_is_never_tuned_on_a_test_split(tmp_path, data, quiet_model, monkeypatch):
    arguments = ["--model", quiet_model, "--data", data, "--split", "test_seen"]
    with pytest.raises(SystemExit) as refused:
        run_script("span_bonus", *arguments, monkeypatch=monkeypatch)
    assert refused.value.code == 2  # argparse: not one of the choices


def test_follow_ups(tmp_path, data, quiet_model, monkeypatch):
    out = tmp_path / "follow_ups.json"
    arguments = ["--model", quiet_model, "--data", data, "--count", 2, "--out", out]
    run_script("follow_ups", *arguments, monkeypatch=monkeypatch)
    report = written(out)
    assert [(r["split"], r["items"]) for r in report["results"]] == [("dev", 2), ("test_unseen", 2), ("dev_unseen", 2)]
    assert all(0 <= r["exact"] <= 1 for r in report["results"])
    assert (tmp_path / "follow_ups" / "dev.jsonl").is_file()


def test_sessions(tmp_path, data, quiet_model, monkeypatch):
    out = tmp_path / "sessions.json"
    run_script("sessions", "--model", quiet_model, "--data", data, "--count", 2, "--out", out, monkeypatch=monkeypatch)
    results = written(out)["results"]
    kinds = [(split, between) for split in ("dev", "dev_unseen") for between in ("nothing", "a greeting")]
    assert [(r["split"], r["between"]) for r in results] == kinds
    assert all(r["items"] > 0 and r["whole"]["call_exact"] == r["alone"]["call_exact"] == 0 for r in results)


def test_a_session_is_the_next_request_after_a_finished_check(data, monkeypatch):
    from agent.chatglm_format import dialogue_messages, read_dialogues
    from agent.evaluate import dialogue_items
    from prompts import load

    monkeypatch.syspath_prepend(str(BENCH))
    sessions = runpy.run_path(str(BENCH / "sessions.py"))["sessions"]
    [(session, second)] = sessions(read_dialogues(data / "dev.jsonl"), 1, "seed", True, False)
    whole, own = (dialogue_messages(d.model_copy(update={"tools": None})) for d in (session, second))
    greeting = load("reports")["greeting"]
    assert whole[-len(own) :] == own and whole[-len(own) - 1].content == greeting
    assert any(message.role == "observation" for message in whole[: -len(own)])
    for tools_in_system in (True, False):
        later = dialogue_items(session, tools_in_system, len(whole) - len(own))
        assert [item.gold for item in later] == [item.gold for item in dialogue_items(second, tools_in_system)]


def test_head_counts(tmp_path, data, quiet_model, monkeypatch):
    out = tmp_path / "head_counts.json"
    arguments = ["--model", quiet_model, "--data", data, "--splits", "dev", "train", "--out", out]
    run_script("head_counts", *arguments, monkeypatch=monkeypatch)
    rows = written(out)["rows"]
    train = (data / "train.jsonl").read_text(encoding="utf-8")
    with_order = train.count("[人数检测] 应到") - train.count("[人数检测] 应到0人")
    assert sum(r["items"] for r in rows if r["split"] == "train") == with_order > 0
    assert all(r["wrong"] == r["items"] == r["written"]["unreadable"] for r in rows)  # the quiet model writes nothing


def test_head_count_pairs_are_grouped_by_what_decides_the_verdict(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    script = runpy.run_path(str(BENCH / "head_counts.py"))
    kinds = [script["kind"](*pair) for pair in ((47, 43), (9, 7), (9, 12), (20, 19), (33, 33))]
    assert kinds == ["one decade", "one digit", "other decades", "other decades", "one decade"]
    assert [script["comparison"](*pair) for pair in ((5, 5), (5, 4), (5, 6))] == ["normal", "absent", "excess"]


def test_ptuning_cpu(tmp_path, data, quiet_model, monkeypatch):
    out = tmp_path / "ptuning.json"
    arguments = ["--model", quiet_model, "--data", data, "--steps", 2, "--grad-accum", 2, "--out", out]
    run_script("ptuning_cpu", *arguments, monkeypatch=monkeypatch)
    report = written(out)
    assert report["samples_per_s"] > 0 and report["window"] == [1, 2]
    assert report["parameters"]["trainable"] == 128 * 2 * 2 * 2 * 8  # tokens × layers × (k, v) × kv heads × dim
    assert report["peak_rss_mib"] >= report["rss_loaded_mib"] > 0


def test_gpu_6b_skips_without_a_gpu(tmp_path, monkeypatch, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the benchmark would run for real")
    out = tmp_path / "gpu.json"
    run_script("gpu_6b", "--out", out, monkeypatch=monkeypatch)
    assert "skipped: no CUDA GPU" in capsys.readouterr().out
    assert written(out)["skipped"] == "no CUDA GPU"


def test_memory(tmp_path, quiet_model, monkeypatch):
    out = tmp_path / "memory.json"
    run_script("memory", "--model", quiet_model, "--requests", 2, "--images", 3, "--out", out, monkeypatch=monkeypatch)
    report = written(out)
    assert report["chat"]["peak_rss_mib"] > 100 and report["run"]["peak_rss_mib"] > 100
    assert list(report["run"]["rss_mib_at_items"]) == ["3"] or report["run"]["rss_mib_at_items"] == {}

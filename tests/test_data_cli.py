"""`inspector data encode` and `inspector data show` through the real CLI."""

import json

from typer.testing import CliRunner

from agent.cli import app
from tests.conftest import SHARED

TOKENIZER = str(SHARED / "chatglm3")
DIALOGUE = {
    "tools": [{"name": "count_people", "description": "统计人数", "parameters": {"type": "object"}}],
    "conversations": [
        {"role": "user", "content": "查查在济南工地人数嘛<|assistant|>"},
        {"role": "tool", "name": "count_people", "parameters": {"site": "济南"}, "observation": {"persons": 34}},
        {"role": "assistant", "content": "[人数检测] 应到47人, 实到34人, 有人缺勤"},
        {"role": "user", "content": "好的"},
    ],
    "meta": {"kind": "request"},
}


def write(tmp_path, *records) -> str:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_encode_prints_ids_and_labels(tmp_path, chatglm3_tokenizer):
    result = CliRunner().invoke(app, ["data", "encode", write(tmp_path, DIALOGUE, DIALOGUE), "--tokenizer", TOKENIZER])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 2 and lines[0] == lines[1]
    ids, labels = lines[0]["input_ids"], lines[0]["labels"]
    assert ids[:3] == [64790, 64792, 64794] and ids[-1] == 2 and len(ids) == len(labels)
    learned = chatglm3_tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != -100])
    call = "count_people\n ```python\ntool_call(site='济南')\n```<|observation|>"
    assert learned == call + "\n [人数检测] 应到47人, 实到34人, 有人缺勤<|user|>"


def test_encode_prompt_stops_before_the_last_reply(tmp_path, chatglm3_tokenizer):
    result = CliRunner().invoke(
        app, ["data", "encode", write(tmp_path, DIALOGUE), "--tokenizer", TOKENIZER, "--prompt"]
    )
    assert result.exit_code == 0, result.output
    ids = json.loads(result.output)["input_ids"]
    assert ids[-1] == 64796
    assert chatglm3_tokenizer.decode(ids).endswith('<|observation|>\n {"persons": 34}<|assistant|>')


def test_show_marks_learned_tokens(tmp_path, chatglm3_tokenizer):
    result = CliRunner().invoke(app, ["data", "show", write(tmp_path, DIALOGUE), "--tokenizer", TOKENIZER, "--ids"])
    assert result.exit_code == 0, result.output
    assert "<|observation|>" in result.output and "·64797" in result.output
    assert "with loss" in result.output


def test_bad_input_is_a_clear_error(tmp_path, chatglm3_tokenizer):
    bad = write(tmp_path, DIALOGUE, {"conversations": []})
    result = CliRunner().invoke(app, ["data", "encode", bad, "--tokenizer", TOKENIZER])
    assert result.exit_code != 0
    assert "d.jsonl:2" in str(result.exception)
    result = CliRunner().invoke(app, ["data", "encode", bad, "--tokenizer", str(tmp_path)])
    assert "no SentencePiece model" in str(result.exception)


def test_console_script_prints_one_line_and_exits_2(tmp_path, chatglm3_tokenizer):
    import subprocess
    import sys
    from pathlib import Path

    inspector = Path(sys.executable).with_name("inspector")
    bad = write(tmp_path, {"conversations": [{"role": "robot", "content": "x"}]})
    done = subprocess.run([inspector, "data", "encode", bad, "--tokenizer", TOKENIZER], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "d.jsonl:1" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1

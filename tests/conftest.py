"""Shared fixtures: the real ChatGLM3-6B tokenizer and checkpoints under ../shared (test data only)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def chatglm3_tokenizer():
    from agent.tokenizer import GLMTokenizer

    path = SHARED / "chatglm3" / "tokenizer.model"
    if not path.is_file():
        pytest.skip(f"the real ChatGLM3 tokenizer is not at {path}")
    return GLMTokenizer.load(path)


@pytest.fixture(scope="session")
def small_tokenizer(tmp_path_factory):
    """A SentencePiece model in ChatGLM3's layout trained on a little inspector text: a few hundred ids."""
    from agent.sp_train import train_tokenizer

    texts = [
        "查查在济南工地人数嘛 青岛 历城 泰安 烟台 潍坊 临沂 德州 统计 站点 实到 人 安全帽 设备 检查",
        "query_work_order\n```python\ntool_call(site='济南', check='人数检测')\n```",
        "Answer the following questions as best as you can. You have access to the following tools:\n"
        '[\n    {\n        "name": "count_people",\n        "description": "统计人数"\n    }\n]',
        '{"image": "images/济南/2024-05-03_0930.jpg", "persons": 34, "expected_workers": 47}',
        "[人数检测] 应到47人, 实到34人, 有人缺勤 0123456789",
    ] * 5
    return train_tokenizer(texts, tmp_path_factory.mktemp("tokenizer"), merges=150, min_char_count=1)

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

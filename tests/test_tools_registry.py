import json
from typing import Annotated, Literal

import pytest
from pydantic import Field

from prompts import load
from tools.catalog import build_registry, tool_descriptions
from tools.context import ToolContext
from tools.observations import Failure
from tools.registry import Registry, derive

ERRORS = load("observations")["errors"]
HINTS = load("observations")["hints"]


def greet(ctx: dict, name: Annotated[str, Field(description="名字")], times: int = 1) -> dict:
    """打招呼.

    More text that the model never sees.
    """
    return {"greeting": f"{ctx['word']} {name}" * times}


def pick(ctx: dict, colour: Literal["红", "绿"], size: float | None = None) -> dict:
    """选颜色"""
    if colour == "绿":
        raise Failure("unknown_site", site=colour)
    if size is not None and size < 0:
        raise OSError("disk on fire")
    return {"colour": colour, "size": size}


@pytest.fixture
def registry() -> Registry:
    registry = Registry({"word": "你好"})
    registry.add(greet)
    registry.add(pick)
    return registry


def test_description_is_derived_from_signature_and_docstring():
    assert derive(greet).description == {
        "name": "greet",
        "description": "打招呼.",
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string", "description": "名字"}, "times": {"type": "integer"}},
            "required": ["name"],
        },
    }
    assert derive(pick).description["parameters"] == {
        "type": "object",
        "properties": {"colour": {"enum": ["红", "绿"], "type": "string"}, "size": {"type": "number"}},
        "required": ["colour"],
    }


def test_a_tool_needs_a_docstring_and_typed_parameters():
    def undocumented(ctx: dict, x: int) -> dict:
        return {}

    def untyped(ctx: dict, x) -> dict:
        """Untyped."""
        return {}

    with pytest.raises(TypeError, match="docstring"):
        derive(undocumented)
    with pytest.raises(TypeError, match="without a type: x"):
        derive(untyped)


def test_duplicate_names_are_rejected(registry):
    with pytest.raises(ValueError, match="already registered"):
        registry.add(greet)
    assert registry.names() == ["greet", "pick"]


def test_call_validates_and_passes_the_context(registry):
    assert registry.call("greet", {"name": "张伟", "times": "2"}) == {"greeting": "你好 张伟你好 张伟"}
    assert registry.call("pick", {"colour": "红"}) == {"colour": "红", "size": None}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "name: Field required"),
        ({"name": 3}, "name: Input should be a valid string"),
        ({"name": "x", "times": "many"}, "times: Input should be a valid integer"),
        ({"name": "x", "colour": "红"}, "colour: Extra inputs are not permitted"),
        (["x"], "参数应为 JSON 对象"),
    ],
)
def test_bad_arguments_are_observations(registry, arguments, problem):
    observation = registry.call("greet", arguments)
    assert list(observation) == ["error", "hint"]
    assert observation["error"].startswith(ERRORS["bad_arguments"].format(tool="greet", problems=""))
    assert problem in observation["error"]
    assert observation["hint"] == HINTS["bad_arguments"]


def test_enum_violation_names_the_allowed_values(registry):
    assert "'红' or '绿'" in registry.call("pick", {"colour": "蓝"})["error"]


def test_unknown_tool_failure_and_runtime_error_are_observations(registry):
    assert registry.call("fly", {}) == {
        "error": ERRORS["unknown_tool"].format(tool="fly"),
        "hint": HINTS["unknown_tool"],
    }
    assert registry.call("pick", {"colour": "绿"}) == {
        "error": ERRORS["unknown_site"].format(site="绿"),
        "hint": HINTS["unknown_site"],
    }
    assert registry.call("pick", {"colour": "红", "size": -1}) == {
        "error": ERRORS["tool_failed"].format(tool="pick", reason="disk on fire"),
        "hint": HINTS["tool_failed"],
    }


def test_programming_errors_are_not_hidden():
    def broken(ctx: dict) -> dict:
        """Broken."""
        return {}["missing"]

    registry = Registry({})
    registry.add(broken)
    with pytest.raises(KeyError):
        registry.call("broken", {})


def test_catalog_descriptions_are_fixed_and_minimal():
    descriptions = tool_descriptions()
    assert [d["name"] for d in descriptions] == ["query_work_order", "count_people", "check_helmets", "check_equipment"]
    assert descriptions == tool_descriptions()
    text = json.dumps(descriptions, ensure_ascii=False)
    assert "title" not in text and "default" not in text and "null" not in text
    work_order = descriptions[0]["parameters"]
    assert work_order["required"] == ["site", "check"]
    assert work_order["properties"]["check"]["enum"] == ["人数检测", "安全检查", "设备检查"]
    for detector in descriptions[1:]:
        assert "required" not in detector["parameters"]
        assert list(detector["parameters"]["properties"]) == ["site", "date", "image"]


def test_the_agent_registry_holds_the_catalog(tmp_path):
    registry = build_registry(ToolContext(database=tmp_path / "none.sqlite"))
    assert registry.descriptions() == tool_descriptions()
    observation = registry.call("count_people", {"site": 5})
    assert observation["error"].startswith(ERRORS["bad_arguments"].format(tool="count_people", problems=""))

"""The tool registry: typed Python functions in, ChatGLM3 tool descriptions and observations out.

A tool is a function `tool(context, arg: Type = default, ...) -> dict` with a docstring. Its argument
model (pydantic) and its description (`name`, `description`, `parameters` as JSON Schema) are derived from
the signature and the docstring's first paragraph; parameter descriptions come from
`Annotated[T, Field(description=...)]`; a `Quoted()` in the same `Annotated` marks an argument whose value
the model copies verbatim from the inspector's words (agent/call_constraint.py holds decoding to it), and a
`Quoted(site=True)` one that names a site of the database (decoding prefers a span that names one). The
agent calls tools only through `Registry.call`, which always returns an observation, never raises for a bad
call.
"""

import inspect
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from agent.errors import InspectorError
from tools.observations import Failure, Observation

ToolFunction = Callable[..., Observation]
# Failures of the world outside the tool (a broken disk, a locked database) become observations too;
# programming errors are left to raise.
_RUNTIME_ERRORS = (InspectorError, OSError, sqlite3.Error)


@dataclass(frozen=True)
class Quoted:
    """Marks a string argument whose value is quoted verbatim from the inspector's words (a site, a date).

    `site`: the value names a site of the database.
    """

    site: bool = False


@dataclass(frozen=True)
class Tool:
    name: str
    function: ToolFunction
    arguments: type[BaseModel]
    description: dict[str, Any]
    quoted: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()  # the quoted arguments that name a site


def derive(function: ToolFunction) -> Tool:
    """The tool a function defines; its first parameter receives the registry's context."""
    doc = inspect.getdoc(function)
    if not doc:
        raise TypeError(f"tool {function.__name__} needs a docstring: it is the model's description")
    parameters = list(inspect.signature(function, eval_str=True).parameters.values())[1:]
    unannotated = [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
    if unannotated:
        raise TypeError(f"tool {function.__name__}: parameters without a type: {', '.join(unannotated)}")
    fields: dict[str, Any] = {
        p.name: (p.annotation, ... if p.default is inspect.Parameter.empty else p.default) for p in parameters
    }
    arguments = create_model(function.__name__, __config__=ConfigDict(extra="forbid"), **fields)
    summary = " ".join(doc.split("\n\n")[0].split())
    description = {"name": function.__name__, "description": summary, "parameters": _parameters(arguments)}
    marks = {p.name: m for p in parameters for m in _metadata(p.annotation) if isinstance(m, Quoted)}
    sites = frozenset(name for name, mark in marks.items() if mark.site)
    return Tool(function.__name__, function, arguments, description, frozenset(marks), sites)


def _metadata(annotation: Any) -> tuple[Any, ...]:
    return getattr(annotation, "__metadata__", ())


def _parameters(arguments: type[BaseModel]) -> dict[str, Any]:
    """The arguments' JSON Schema without pydantic's titles and defaults; `X | None` is plain X."""
    schema = arguments.model_json_schema()
    properties = {name: _property(prop) for name, prop in schema["properties"].items()}
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        parameters["required"] = schema["required"]
    return parameters


def _property(prop: dict[str, Any]) -> dict[str, Any]:
    variants = [v for v in prop.get("anyOf", [prop]) if v.get("type") != "null"]
    kept = {k: v for k, v in variants[0].items() if k not in ("title", "default", "description")}
    if len(variants) > 1:
        kept = {"anyOf": [{k: v for k, v in variant.items() if k != "title"} for variant in variants]}
    if "description" in prop:
        kept["description"] = prop["description"]
    return kept


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '参数'}: {e['msg']}" for e in error.errors())


class Registry:
    """Tools keyed by name, called with one shared context (database, detector, clock, ...)."""

    def __init__(self, context: object) -> None:
        self.context = context
        self._tools: dict[str, Tool] = {}

    def add(self, function: ToolFunction) -> Tool:
        tool = derive(function)
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name} is already registered")
        self._tools[tool.name] = tool
        return tool

    def names(self) -> list[str]:
        return list(self._tools)

    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def descriptions(self) -> list[dict[str, Any]]:
        return [tool.description for tool in self._tools.values()]

    def validate(self, name: str, arguments: object) -> BaseModel:
        """The validated arguments of a call; raises `Failure` for an unknown tool or bad arguments."""
        tool = self._tools.get(name)
        if tool is None:
            raise Failure("unknown_tool", tool=name)
        if not isinstance(arguments, dict):
            raise Failure("bad_arguments", tool=name, problems="参数应为 JSON 对象")
        try:
            return tool.arguments.model_validate(arguments)
        except ValidationError as error:
            raise Failure("bad_arguments", tool=name, problems=_problems(error)) from None

    def call(self, name: str, arguments: object) -> Observation:
        """Validate the arguments and run the tool; every outcome, failures included, is an observation."""
        try:
            validated = self.validate(name, arguments)
        except Failure as failure:
            return failure.observation()
        try:
            return self._tools[name].function(self.context, **dict(validated))
        except Failure as failure:
            return failure.observation()
        except _RUNTIME_ERRORS as error:
            return Failure("tool_failed", tool=name, reason=str(error)).observation()

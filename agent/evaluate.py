"""Evaluation of a language model on a split of the inspector data, step by step, teacher-forced.

Every assistant message of every dialogue is one item: the model gets the gold history and writes the
next message. Items are labelled by the step they belong to (greet, ask, parse, summarize) and scored:
the call's function and arguments as BFCL's AST checker labels them, reports exactly and for fidelity
(numbers and verdict), latency per step, and everything again by speech-noise level.
"""

import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.backend import ModelBackend
from agent.chatglm_format import (
    Dialogue,
    Message,
    ToolCall,
    dialogue_messages,
    message_text,
    parse_assistant,
    read_dialogues,
)
from agent.errors import MalformedToolCall
from agent.reports import report_outcome
from prompts import load

NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Item:
    """One assistant message to predict, with its gold answer and what it is for."""

    history: list[Message]
    gold: str | ToolCall
    step: str
    noise: str


@dataclass(frozen=True)
class Scored:
    item: Item
    output: str
    verdict: str  # "ok" or an error label
    seconds: float


def step_of(history: list[Message], gold: str | ToolCall) -> str:
    """greet / ask / parse / summarize: what the agent is doing when it asks for this message."""
    if isinstance(gold, ToolCall):
        return "parse"
    if history[-1].role == "observation":
        return "summarize"
    return "greet" if gold == load("reports")["greeting"] else "ask"


def items_of(path: Path, tools_in_system: bool = True) -> list[Item]:
    return [item for dialogue in read_dialogues(path) for item in dialogue_items(dialogue, tools_in_system)]


def dialogue_items(dialogue: Dialogue, tools_in_system: bool = True, after: int = 0) -> list[Item]:
    """An item per assistant message of `dialogue`, those of its first `after` messages (after the system
    message, if any) left out."""
    if not tools_in_system:
        dialogue = dialogue.model_copy(update={"tools": None})
    noise = str((dialogue.model_extra or {}).get("meta", {}).get("noise", {}).get("level", "none"))
    messages = dialogue_messages(dialogue)
    start = after + sum(message.role == "system" for message in messages[:1])
    items = []
    for index, message in enumerate(messages[start:], start=start):
        if message.role != "assistant":
            continue
        gold = parse_assistant(message_text(message))
        history = messages[:index]
        items.append(Item(history, gold, step_of(history, gold), noise))
    return items


def tool_schemas() -> dict[str, Any]:
    from tools.catalog import derived_tools

    return {tool.name: tool.arguments for tool in derived_tools()}


def judge(gold: str | ToolCall, output: str, schemas: dict[str, Any]) -> str:
    """ "ok", or the first error in BFCL's AST-checker terms."""
    try:
        predicted = parse_assistant(output)
    except MalformedToolCall:
        return "unparseable"
    if isinstance(gold, str):
        if isinstance(predicted, ToolCall):
            return "unexpected_call"
        return "ok" if predicted == gold else "wrong_text"
    if not isinstance(predicted, ToolCall):
        return "no_call"
    if predicted.name not in schemas:
        return "invalid_call"
    if predicted.name != gold.name:
        return "wrong_function"
    from pydantic import ValidationError

    try:
        schemas[predicted.name].model_validate(predicted.arguments)
    except ValidationError:
        return "invalid_call"
    if set(gold.arguments) - set(predicted.arguments):
        return "missing_argument"
    if set(predicted.arguments) - set(gold.arguments):
        return "unexpected_argument"
    return "ok" if predicted.arguments == gold.arguments else "wrong_value"


def faithful(gold: str, output: str) -> bool:
    """A report whose numbers and verdict (the text after the last number) agree with the gold report."""
    gold, output = gold.strip(), output.strip()
    return NUMBER.findall(gold) == NUMBER.findall(output) and NUMBER.split(gold)[-1] == NUMBER.split(output)[-1]


def run(backend: ModelBackend, items: list[Item], batch_size: int = 32, max_new_tokens: int = 96) -> list[Scored]:
    """Generate every item's message in batches of similar prompt length, and judge it."""
    schemas = tool_schemas()
    order = sorted(range(len(items)), key=lambda i: len(items[i].history))
    scored: dict[int, Scored] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        generations = backend.generate([items[i].history for i in chunk], max_new_tokens)
        for i, generation in zip(chunk, generations, strict=True):
            verdict = judge(items[i].gold, generation.text, schemas)
            scored[i] = Scored(items[i], generation.text, verdict, generation.seconds)
    return [scored[i] for i in range(len(items))]


def latencies(backend: ModelBackend, items: list[Item], per_step: int) -> dict[str, dict[str, float]]:
    """Unbatched wall-clock seconds per step, as one inspector waits for them: p50 and p95."""
    by_step: dict[str, list[float]] = defaultdict(list)
    for item in items:
        if len(by_step[item.step]) < per_step:
            started = time.perf_counter()
            backend.generate([item.history])
            by_step[item.step].append(time.perf_counter() - started)
    return {
        step: {"p50_ms": 1000 * _quantile(s, 0.5), "p95_ms": 1000 * _quantile(s, 0.95), "n": len(s)}
        for step, s in sorted(by_step.items())
    }


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] if len(values) > 1 else values[0]


def summarize(scored: list[Scored]) -> dict[str, Any]:
    """Accuracy figures over `scored` items."""
    calls = [s for s in scored if isinstance(s.item.gold, ToolCall)]
    texts = [s for s in scored if isinstance(s.item.gold, str)]
    reports = [s for s in texts if s.item.step == "summarize"]
    no_call = [s for s in texts if s.item.step in ("greet", "ask")]
    per_argument: dict[str, list[bool]] = defaultdict(list)
    for s in calls:
        try:
            predicted = parse_assistant(s.output)
        except MalformedToolCall:
            predicted = None
        for name, value in s.item.gold.arguments.items():
            arguments = predicted.arguments if isinstance(predicted, ToolCall) else {}
            per_argument[name].append(arguments.get(name) == value)
    by_outcome: dict[str, list[bool]] = defaultdict(list)
    for s in reports:
        by_outcome[report_outcome(str(s.item.gold)) or "other"].append(s.verdict == "ok")
    selection = [
        s.verdict not in ("wrong_function", "no_call", "unexpected_call", "unparseable", "invalid_call") for s in scored
    ]
    return {
        "items": len(scored),
        "tool_selection": _rate(selection),
        "no_call_when_none_needed": _rate([s.verdict == "ok" or s.verdict == "wrong_text" for s in no_call]),
        "call_exact": _rate([s.verdict == "ok" for s in calls]),
        "argument_exact": {name: _rate(hits) for name, hits in sorted(per_argument.items())},
        "invalid_or_unparseable": _rate([s.verdict in ("unparseable", "invalid_call") for s in scored]),
        "reply_exact": _rate([s.verdict == "ok" for s in no_call]),
        "report_exact": _rate([s.verdict == "ok" for s in reports]),
        "report_fidelity": _rate([faithful(str(s.item.gold), s.output) for s in reports]),
        "report_exact_by_outcome": {
            name: {"items": len(hits), "wrong": hits.count(False)} for name, hits in sorted(by_outcome.items())
        },
        "errors": dict(Counter(s.verdict for s in scored if s.verdict != "ok").most_common()),
    }


def _rate(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def by_noise(scored: list[Scored]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        groups[s.item.noise].append(s)
    return {level: summarize(group) for level, group in sorted(groups.items())}

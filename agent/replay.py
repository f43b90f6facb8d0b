"""Regression tests on canned dialogues in ChatGLM3's fine-tuning format.

Each dialogue is replayed turn by turn: the user's words go to the agent, whose tools answer with the
observations recorded in the dialogue (the same tool names, descriptions and argument validation as the
catalog's, but no database, detector or image), or with the real tools when live. Each turn becomes lines
such as `call query_work_order(site='济南', check='人数检测')` and `reply [人数检测] ...`: the model's own
tool calls, its invalid outputs, its reply (the model's words, before any correction) and a `flagged` line
when the agent had to step in. A dialogue passes when the replayed lines equal the recorded ones;
otherwise its unified diff says where they part.
"""

import difflib
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from agent.chatglm_format import Dialogue, read_dialogues
from agent.state_machine import Agent, Turn
from tools.catalog import TOOLS, tool_descriptions
from tools.observations import Failure, Observation
from tools.registry import Registry

_ORDER = {tool["name"]: list(tool["parameters"]["properties"]) for tool in tool_descriptions()}
# Characters XML 1.0 cannot carry (a model's garbage may hold them): shown as their escapes in JUnit files.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class RecordedCall:
    name: str
    arguments: dict[str, Any]
    observation: Any


@dataclass(frozen=True)
class RecordedTurn:
    """One user turn of a dialogue: the words, the tool calls answering them, the reply."""

    user: str
    calls: tuple[RecordedCall, ...]
    reply: str

    def lines(self) -> list[str]:
        return [f"user {self.user}", *(call_line(c.name, c.arguments) for c in self.calls), f"reply {self.reply}"]


def recorded_turns(dialogue: Dialogue) -> list[RecordedTurn]:
    """The dialogue's user turns (system messages aside); raises ValueError when it cannot be replayed."""
    turns: list[RecordedTurn] = []
    user: str | None = None
    calls: list[RecordedCall] = []
    for message in dialogue.conversations:
        if message.role == "system":
            continue
        if message.role == "user":
            if user is not None:
                raise ValueError(f"the user turn {user!r} has no recorded reply")
            user, calls = message.content, []
        elif user is None:
            raise ValueError(f"a recorded {message.role} turn comes before any user turn")
        elif message.role == "tool":
            calls.append(RecordedCall(message.name, message.parameters, message.observation))
        else:
            turns.append(RecordedTurn(user, tuple(calls), message.content))
            user = None
    if user is not None:
        raise ValueError(f"the user turn {user!r} has no recorded reply")
    if not turns:
        raise ValueError("no user turn")
    return turns


def call_line(name: str, arguments: dict[str, Any]) -> str:
    """A tool call as one line, its arguments in the tool's parameter order."""
    order = _ORDER.get(name, [])
    ranked = sorted(arguments.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    return f"call {name}({', '.join(f'{key}={value!r}' for key, value in ranked)})"


def replayed_lines(turn: Turn) -> list[str]:
    """What the model did in a turn, as lines comparable with `RecordedTurn.lines`."""
    lines, reply = [f"user {turn.input}"], turn.reply
    for step in turn.steps:
        if isinstance(step.parsed, dict):
            lines.append(call_line(step.parsed["name"], step.parsed["arguments"]))
        elif step.error is not None:
            lines.append(f"invalid {step.output!r}")
        else:
            reply = str(step.parsed)
    lines.append(f"reply {reply}")
    if turn.flagged:
        reason = turn.verdict.reason if turn.verdict else None
        lines.append(f"flagged {turn.state.value}: the agent replied {turn.reply}" + (f" ({reason})" if reason else ""))
    return lines


class RecordedTools(Registry):
    """The catalog's tools as the model sees them; a call is answered with the observation recorded for it
    at that point of the turn, and anything else with an error observation."""

    def __init__(self) -> None:
        super().__init__(context=None)
        for tool in TOOLS:
            self.add(tool)
        self.pending: list[RecordedCall] = []

    def call(self, name: str, arguments: object) -> Observation:
        try:
            self.validate(name, arguments)
        except Failure as failure:
            return failure.observation()
        recorded = self.recorded_for(name, arguments)
        if recorded is None:
            return Failure("tool_failed", tool=name, reason="回放记录中此处没有这次调用").observation()
        self.pending.remove(recorded)
        return recorded.observation

    def recorded_for(self, name: str, arguments: object) -> RecordedCall | None:
        """The recording that answers a valid call: the next one, if it is this very call."""
        if self.pending and (self.pending[0].name, self.pending[0].arguments) == (name, arguments):
            return self.pending[0]
        return None


@dataclass(frozen=True)
class DialogueResult:
    name: str
    passed: bool
    diff: str  # recorded → replayed; empty when passed
    seconds: float


@dataclass(frozen=True)
class FileResult:
    path: Path
    dialogues: list[DialogueResult]

    @property
    def failed(self) -> list[DialogueResult]:
        return [result for result in self.dialogues if not result.passed]


class Replayer:
    """Replays dialogues through one agent: on recorded observations, or on its own (live) tools."""

    def __init__(self, agent: Agent, live: bool = False) -> None:
        self.agent = agent
        self.recorded = None if live else RecordedTools()
        if self.recorded is not None:
            agent.registry = self.recorded

    def file(self, path: Path) -> FileResult:
        results = []
        for number, dialogue in enumerate(read_dialogues(path), start=1):
            meta = (dialogue.model_extra or {}).get("meta")
            label = meta.get("name") if isinstance(meta, dict) else None
            results.append(self.dialogue(dialogue, f"{path.name} #{number}" + (f" {label}" if label else "")))
        return FileResult(path, results)

    def dialogue(self, dialogue: Dialogue, name: str) -> DialogueResult:
        started = time.perf_counter()
        try:
            turns = recorded_turns(dialogue)
        except ValueError as err:
            return DialogueResult(name, False, f"cannot replay {name}: {err}", 0.0)
        self.agent.memory.reset()
        recorded = [line for turn in turns for line in turn.lines()]
        replayed: list[str] = []
        for turn in turns:
            if self.recorded is not None:
                self.recorded.pending = list(turn.calls)
            try:
                replayed += replayed_lines(self.agent.turn(turn.user))
            except Exception as error:  # one dialogue's crash is its failure, not the end of the replay
                replayed += [f"user {turn.user}", f"error {type(error).__name__}: {error}"]
                break
        diff = "\n".join(difflib.unified_diff(recorded, replayed, "recorded", "replayed", lineterm=""))
        return DialogueResult(name, recorded == replayed, diff, time.perf_counter() - started)


def summary(files: list[FileResult]) -> Table:
    """Dialogues, passed, failed and pass rate per file, and in total."""
    table = Table("file", "dialogues", "passed", "failed", "pass rate", title="replay")
    rows = [(str(f.path), len(f.dialogues), len(f.failed)) for f in files]
    if len(files) > 1:
        rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    for name, total, failed in rows:
        rate = f"{100 * (total - failed) / total:.1f} %" if total else "–"
        cells = (Text(name), str(total), str(total - failed), str(failed), rate)
        table.add_row(*cells, style="red" if failed else "green")
    return table


def junit(files: list[FileResult]) -> ET.ElementTree:
    """JUnit XML: a test suite per file, a test case per dialogue, a failure carrying its diff."""
    every = [result for f in files for result in f.dialogues]
    failures = str(sum(not result.passed for result in every))
    root = ET.Element("testsuites", name="inspector replay", tests=str(len(every)), failures=failures)
    for f in files:
        suite = ET.SubElement(root, "testsuite", name=_xml(str(f.path)), tests=str(len(f.dialogues)))
        suite.set("failures", str(len(f.failed)))
        suite.set("time", f"{sum(result.seconds for result in f.dialogues):.3f}")
        for result in f.dialogues:
            case = ET.SubElement(suite, "testcase", classname=_xml(f.path.stem), name=_xml(result.name))
            case.set("time", f"{result.seconds:.3f}")
            if not result.passed:
                failure = ET.SubElement(case, "failure", message="replayed dialogue differs from the recording")
                failure.text = _xml(result.diff)
    ET.indent(root)
    return ET.ElementTree(root)


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda match: ascii(match.group())[1:-1], text)

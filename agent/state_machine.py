"""The agent: one inspector turn through the states greet / parse / act / summarize / done / ask-back.

The model decides which step it is taking by what it writes after `<|assistant|>`: a reply to a greeting
or an ask-back (greet / ask-back), a tool call (parse → act), or, once observations are in, a report
(summarize). Every transition is in `TRANSITIONS`; a turn makes at most `max_model_calls` model calls. An
invalid call goes back to the model once as an observation; a second one ends the turn with a clear
message. A report is verified against the observations before the inspector reads it.

A turn is written as a generator of model requests (`Agent.steps`): it yields each prompt and is sent the
model's generation back. `Agent.turn` answers them one at a time; `agent.lockstep` answers the requests of
many agents' turns with one batched model call.
"""

import re
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from agent.backend import Generation, ModelBackend
from agent.chatglm_format import (
    Message,
    ToolCall,
    call_message,
    observation_message,
    parse_assistant,
)
from agent.errors import MalformedToolCall
from agent.memory import Memory
from agent.reports import CHECKS, DETECTOR_FOR, Check
from agent.verifier import Verdict, verify
from prompts import load
from tools.observations import Failure, Observation
from tools.registry import Registry

WORK_ORDER = "query_work_order"
CHECK_OF_DETECTOR = {tool: check for check, tool in DETECTOR_FOR.items()}
_WORDS = re.compile(r"[\w\u4e00-\u9fff]")
_REPORT = re.compile(r"^\[(" + "|".join(CHECKS) + r")\]")


class State(StrEnum):
    PARSE = "parse"  # the model reads the request: it greets, asks back, or calls a tool
    ACT = "act"  # a tool runs
    SUMMARIZE = "summarize"  # observations are in: the model calls again or reports
    GREET = "greet"
    ASK_BACK = "ask_back"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"  # the input never reached the model


class Event(StrEnum):
    GREETING = "greeting"
    TEXT = "text"
    CALL = "call"
    OBSERVED = "observed"
    INVALID = "invalid"
    GAVE_UP = "gave_up"
    UNVERIFIED = "unverified"  # a report written without any observation


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.PARSE, Event.GREETING): State.GREET,
    (State.PARSE, Event.TEXT): State.ASK_BACK,
    (State.PARSE, Event.CALL): State.ACT,
    (State.PARSE, Event.INVALID): State.PARSE,
    (State.PARSE, Event.GAVE_UP): State.FAILED,
    (State.PARSE, Event.UNVERIFIED): State.FAILED,
    (State.ACT, Event.OBSERVED): State.SUMMARIZE,
    (State.SUMMARIZE, Event.CALL): State.ACT,
    (State.SUMMARIZE, Event.TEXT): State.DONE,
    (State.SUMMARIZE, Event.INVALID): State.SUMMARIZE,
    (State.SUMMARIZE, Event.GAVE_UP): State.FAILED,
}


def advance(state: State, event: Event) -> State:
    return TRANSITIONS[(state, event)]


@dataclass
class ModelStep:
    state: str
    output: str
    prompt_tokens: int
    seconds: float
    parsed: dict[str, Any] | str | None = None
    error: Observation | None = None  # why the output cannot be used, as the model will read it


@dataclass
class ToolRun:
    name: str
    arguments: dict[str, Any]
    observation: Observation
    by: str  # "model", or "agent" when the agent completed a check the model left half done
    seconds: float


@dataclass
class Turn:
    """Everything one turn did, for the screen and for the audit log."""

    input: str
    reply: str = ""
    state: State = State.PARSE
    steps: list[ModelStep] = field(default_factory=list)
    tools: list[ToolRun] = field(default_factory=list)
    verdict: Verdict | None = None
    flagged: bool = False
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        return asdict(self)


Observer = Callable[[str, Any], None]
TurnSteps = Generator[list[Message], Generation, Turn]  # yields prompts, is sent generations, returns the turn


class Agent:
    """Runs turns of one conversation with a model, the tool registry and a memory."""

    def __init__(
        self,
        backend: ModelBackend,
        registry: Registry,
        memory: Memory,
        sites_in: Callable[[str], list[str]] = lambda text: [],
        observer: Observer = lambda kind, payload: None,
    ) -> None:
        self.backend, self.registry, self.memory = backend, registry, memory
        self.sites_in, self.observer = sites_in, observer
        self.texts = load("agent")
        self.greeting = load("reports")["greeting"]

    @property
    def max_new_tokens(self) -> int:
        return int(self.texts["limits"]["max_new_tokens"])

    def fork(self, registry: Registry) -> "Agent":
        """An agent on the same model with its own tools and an empty memory (one per item of a batch)."""
        return Agent(self.backend, registry, self.memory.fresh(), self.sites_in, self.observer)

    def turn(self, text: str) -> Turn:
        """One turn, each model request answered on its own."""
        steps = self.steps(text)
        try:
            prompt = next(steps)
            while True:
                [generation] = self.backend.generate([prompt], self.max_new_tokens)
                prompt = steps.send(generation)
        except StopIteration as finished:
            return finished.value

    def steps(self, text: str) -> TurnSteps:
        started = time.perf_counter()
        turn = Turn(input=text)
        rejection = self._rejection(text.strip())
        if rejection is not None:
            return self._finish(turn, State.REJECTED, rejection, [], started)
        current = [Message("user", text.strip())]
        state, retried = State.PARSE, False
        for _ in range(self.texts["limits"]["max_model_calls"]):
            self.observer("model", state.value)
            generation = yield self.memory.prompt(current)
            step = self._read(state, generation)
            turn.steps.append(step)
            parsed = step.parsed
            if step.error is not None:
                if retried:
                    state = advance(state, Event.GAVE_UP)
                    reply = self.texts["messages"]["model_failed"].format(error=step.error["error"])
                    return self._finish(turn, state, reply, current, started, flagged=True)
                retried = True
                state = advance(state, Event.INVALID)
                current += _rejected_output(step)
                continue
            if isinstance(parsed, dict):
                state = advance(state, Event.CALL)
                call = ToolCall(parsed["name"], parsed["arguments"])
                observation = self._run(turn, call, by="model")
                current += [call_message(call), observation_message(observation)]
                state = advance(state, Event.OBSERVED)
                continue
            reply = str(parsed)
            if state is State.PARSE:
                if reply == self.greeting:
                    return self._finish(turn, advance(state, Event.GREETING), reply, current, started)
                if _REPORT.match(reply):
                    unverified = self.texts["messages"]["unverified_report"]
                    state = advance(state, Event.UNVERIFIED)
                    return self._finish(turn, state, unverified, current, started, flagged=True)
                return self._finish(turn, advance(state, Event.TEXT), reply, current, started)
            turn.verdict = self._verify(turn, reply)
            replaced = turn.verdict is None or turn.verdict.replaced
            final = turn.verdict.report if turn.verdict else self.texts["messages"]["unverified_report"]
            return self._finish(turn, advance(state, Event.TEXT), final, current, started, flagged=replaced)
        limit = self.texts["limits"]["max_model_calls"]
        reply = self.texts["messages"]["too_many_calls"].format(limit=limit)
        return self._finish(turn, State.FAILED, reply, current, started, flagged=True)

    # --- the steps ---------------------------------------------------------------------------------

    def _rejection(self, text: str) -> str | None:
        messages, limit = self.texts["messages"], self.texts["limits"]["max_input_chars"]
        if not text:
            return messages["empty_input"]
        if len(text) > limit:
            return messages["input_too_long"].format(length=len(text), limit=limit)
        if not _WORDS.search(text):
            return messages["no_words"]
        sites = self.sites_in(text)
        if len(sites) > 1:
            return messages["several_sites"].format(sites="、".join(sites))
        return None

    def _read(self, state: State, generation: Generation) -> ModelStep:
        """The model's message, parsed and validated; an unusable one carries the error the model will read."""
        step = ModelStep(state.value, generation.text, generation.prompt_tokens, generation.seconds)
        try:
            parsed = parse_assistant(generation.text)
            if isinstance(parsed, ToolCall):
                self.registry.validate(parsed.name, parsed.arguments)
                step.parsed = {"name": parsed.name, "arguments": parsed.arguments}
            else:
                step.parsed = parsed
        except MalformedToolCall as error:
            step.parsed = _stray_report(state, generation.text)
            if step.parsed is None:
                step.error = Failure("malformed_call", problem=str(error)).observation()
        except Failure as failure:
            step.error = failure.observation()
        return step

    def _run(self, turn: Turn, call: ToolCall, by: str) -> Observation:
        self.observer("tool", call)
        started = time.perf_counter()
        try:
            observation = self.registry.call(call.name, call.arguments)
        except Exception as error:  # a tool's bug must not end the chat: it becomes an observation
            message = self.texts["messages"]["tool_crashed"].format(tool=call.name, error=error)
            observation = {"error": message, "hint": load("observations")["hints"]["tool_failed"]}
        turn.tools.append(ToolRun(call.name, call.arguments, observation, by, time.perf_counter() - started))
        self.observer("observation", observation)
        return observation

    def _verify(self, turn: Turn, report: str) -> Verdict | None:
        """Check the report against this turn's last check; completes a half-done check first."""
        check, work_order, detection = self._last_check(turn)
        if check is None:
            return None
        site_date = {k: v for k, v in (work_order or detection).arguments.items() if k in ("site", "date")}
        if work_order is None:
            self._run(turn, ToolCall(WORK_ORDER, {**site_date, "check": check}), by="agent")
            check, work_order, detection = self._last_check(turn)
        if detection is None and "error" not in work_order.observation:
            self._run(turn, ToolCall(DETECTOR_FOR[check], site_date), by="agent")
            check, work_order, detection = self._last_check(turn)
        return verify(report, check, work_order.observation, detection.observation if detection else None)

    @staticmethod
    def _last_check(turn: Turn) -> tuple[Check | None, ToolRun | None, ToolRun | None]:
        work_order = next((run for run in reversed(turn.tools) if run.name == WORK_ORDER), None)
        detection = next((run for run in reversed(turn.tools) if run.name in CHECK_OF_DETECTOR), None)
        if work_order is not None:
            check = work_order.arguments["check"]
            if detection is not None and CHECK_OF_DETECTOR[detection.name] != check:
                detection = None
            return check, work_order, detection
        if detection is not None:
            return CHECK_OF_DETECTOR[detection.name], None, detection
        return None, None, None

    def _finish(
        self, turn: Turn, state: State, reply: str, current: list[Message], started: float, flagged: bool = False
    ) -> Turn:
        turn.state, turn.reply, turn.flagged = state, reply, flagged
        turn.seconds = time.perf_counter() - started
        if current:
            self.memory.remember([*current, Message("assistant", reply)])
        return turn


def _stray_report(state: State, text: str) -> str | None:
    """A report the model wrote under a tool's name instead of as a reply (a stray first line), once
    observations are in: it is read as the report, and verified like any other. None for anything else."""
    _, _, content = text.partition("\n")
    content = content.strip()
    return content if state is State.SUMMARIZE and _REPORT.match(content) else None


def _rejected_output(step: ModelStep) -> list[Message]:
    """The model's unusable message and the error observation that answers it."""
    metadata, newline, content = step.output.partition("\n")
    if not newline:
        metadata, content = "", step.output
    return [Message("assistant", content.strip(), metadata=metadata.strip()), observation_message(step.error)]

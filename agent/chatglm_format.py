"""ChatGLM3's dialogue format, for training and for inference: the one place that owns it.

A sequence is `[gMASK] sop` followed by messages; a message is `<|role|>` + encode(metadata + "\\n") +
encode(content), each part encoded separately. A tool call is an assistant message whose metadata is the
tool's name and whose content is a fenced `tool_call(arg=value, ...)`; its result follows as an
`<|observation|>` message. Training encodings match ChatGLM3's multi-turn fine-tuning preprocessing token
for token; tool calls written by a model are parsed with `ast`, never executed.
"""

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import MalformedToolCall, UserError
from agent.tokenizer import GLMTokenizer
from prompts import load

Role = Literal["system", "user", "assistant", "observation"]
IGNORE = -100  # label of a token that carries no loss
_FENCE = re.compile(r"```(?:python)?\n(?P<code>.*?)\n?```", re.DOTALL)


@dataclass(frozen=True)
class Message:
    """One message of a dialogue; `loss` says whether training learns it."""

    role: Role
    content: str
    metadata: str = ""
    loss: bool = False


@dataclass(frozen=True)
class ToolCall:
    """A parsed tool call: the tool's name and its keyword arguments."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Encoded:
    """A training example: `labels[i]` is `input_ids[i]` where token i is learned, else IGNORE."""

    input_ids: list[int]
    labels: list[int]


# --- messages ---------------------------------------------------------------------------------------


def render_call(arguments: dict[str, Any]) -> str:
    """The content of a tool-call message, rendered with `ast` exactly as ChatGLM3's preprocessing does."""
    keywords = [ast.keyword(arg=name, value=ast.Constant(value)) for name, value in arguments.items()]
    call = ast.Call(func=ast.Name(id=load("chatglm3")["call_function"]), args=[], keywords=keywords)
    return f"```python\n{ast.unparse(call)}\n```"


def render_observation(result: Any) -> str:
    """A tool result as observation text: a string as is, anything else as JSON."""
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def tools_message(tools: list[Any]) -> Message:
    """The system message that offers `tools` to the model."""
    preamble = load("chatglm3")["tool_preamble"]
    return Message("system", preamble + json.dumps(tools, indent=4, ensure_ascii=False))


def call_message(call: ToolCall, loss: bool = False) -> Message:
    return Message("assistant", render_call(call.arguments), metadata=call.name, loss=loss)


def message_text(message: Message) -> str:
    """A message's text after its role token: metadata, newline, content (what `parse_assistant` reads)."""
    return f"{message.metadata}\n{message.content}"


def observation_message(result: Any) -> Message:
    return Message("observation", render_observation(result))


# --- the fine-tuning JSON format ----------------------------------------------------------------------


class _TextTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str
    loss: bool = True


class _ToolTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["tool"]
    name: str = Field(min_length=1)
    parameters: dict[str, Any]
    observation: Any
    loss: bool = True


class Dialogue(BaseModel):
    """A dialogue in ChatGLM3's fine-tuning JSON format (extra top-level keys such as `meta` are kept)."""

    model_config = ConfigDict(extra="allow")
    tools: list[Any] | None = None
    conversations: list[Annotated[_TextTurn | _ToolTurn, Field(discriminator="role")]] = Field(min_length=1)


def parse_dialogue(line: str) -> Dialogue:
    """One JSONL line as a dialogue; raises ValueError saying what is wrong."""
    try:
        return Dialogue.model_validate_json(line)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{where}: {first['msg']}" if where else first["msg"]) from None


def read_dialogues(path: Path) -> list[Dialogue]:
    """Every dialogue of a JSONL file; a malformed line is a UserError naming its line number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    dialogues = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            dialogues.append(parse_dialogue(line))
        except ValueError as err:
            raise UserError(f"{path}:{number}: not a dialogue in ChatGLM3's format: {err}") from None
    return dialogues


def dialogue_messages(dialogue: Dialogue) -> list[Message]:
    """The messages a dialogue stands for, with ChatGLM3's loss rules.

    Tools become a leading system message; system and user messages never carry loss; a `tool` turn is a
    tool-call assistant message (loss unless `"loss": false`) and its observation (no loss).
    """
    messages = [tools_message(dialogue.tools)] if dialogue.tools is not None else []
    for turn in dialogue.conversations:
        if isinstance(turn, _ToolTurn):
            messages.append(call_message(ToolCall(turn.name, turn.parameters), loss=turn.loss))
            messages.append(observation_message(turn.observation))
        else:
            learned = turn.loss and turn.role == "assistant"
            messages.append(Message(turn.role, turn.content, loss=learned))
    return messages


# --- encoding -----------------------------------------------------------------------------------------


def encode_message(tokenizer: GLMTokenizer, message: Message) -> list[int]:
    """`<|role|>` + encode(metadata + "\\n") + encode(content), as ChatGLM3's `build_single_message`."""
    return [
        tokenizer.role(message.role),
        *tokenizer.encode(f"{message.metadata}\n"),
        *tokenizer.encode(message.content),
    ]


def encode_training(tokenizer: GLMTokenizer, messages: list[Message]) -> Encoded:
    """Input ids and labels as ChatGLM3's multi-turn fine-tuning preprocessing computes them.

    The sequence is the prefix, every message and `eos`. A token is learned when the token *before* it
    belongs to a message with loss: the model learns each such message's text and the token that follows
    it (the next role token or `eos`), not the `<|assistant|>` that opens it.
    """
    input_ids = list(tokenizer.prefix)
    in_loss = [False] * len(input_ids)
    for message in messages:
        ids = encode_message(tokenizer, message)
        input_ids += ids
        in_loss += [message.loss] * len(ids)
    input_ids.append(tokenizer.eos_id)
    labels = [IGNORE] + [token if previous else IGNORE for token, previous in zip(input_ids[1:], in_loss, strict=True)]
    return Encoded(input_ids, labels)


def encode_prompt(tokenizer: GLMTokenizer, messages: list[Message]) -> list[int]:
    """The prompt for the next assistant message: prefix, the messages so far, then `<|assistant|>`."""
    ids = list(tokenizer.prefix)
    for message in messages:
        ids += encode_message(tokenizer, message)
    return [*ids, tokenizer.role("assistant")]


def last_reply_prompt(messages: list[Message]) -> tuple[list[Message], Message]:
    """The messages before the last plain (non-tool-call) assistant message, and that message."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.role == "assistant" and not message.metadata:
            return messages[:index], message
    raise ValueError("the dialogue has no plain assistant message")


# --- parsing what a model wrote ---------------------------------------------------------------------


def parse_assistant(text: str) -> str | ToolCall:
    """A generated assistant message (the text after `<|assistant|>`) as reply text or a tool call.

    The first line is the metadata: empty for a reply, the tool's name for a call. Nothing is executed:
    arguments are read with `ast.literal_eval`; anything malformed raises `MalformedToolCall`.
    """
    metadata, newline, content = text.partition("\n")
    if not newline:
        metadata, content = "", text
    name = metadata.strip()
    if not name:
        if content.strip().startswith("```"):
            raise MalformedToolCall("a tool call without a tool name (the line before the code block is empty)")
        return content.strip()
    if not name.isidentifier():
        raise MalformedToolCall(f"{name!r} is not a valid tool name")
    return ToolCall(name, parse_call(content))


def parse_call(content: str) -> dict[str, Any]:
    """The keyword arguments of a fenced `tool_call(...)`; raises `MalformedToolCall`."""
    block = _FENCE.fullmatch(content.strip())
    if block is None:
        raise MalformedToolCall("a tool call must be a single ```python code block, opened and closed")
    code = block["code"].strip()
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError as err:
        raise MalformedToolCall(f"the tool call is not valid Python ({err.msg}): {code!r}") from None
    call = tree.body
    function = load("chatglm3")["call_function"]
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == function):
        raise MalformedToolCall(f"the code block must be a single {function}(...) call: {code!r}")
    if call.args:
        raise MalformedToolCall(f"{function}(...) takes keyword arguments only: {code!r}")
    arguments = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise MalformedToolCall(f"{function}(...) does not accept **kwargs: {code!r}")
        if keyword.arg in arguments:
            raise MalformedToolCall(f"argument {keyword.arg!r} is given twice: {code!r}")
        try:
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            value = ast.unparse(keyword.value)
            raise MalformedToolCall(f"argument {keyword.arg!r} is not a literal value: {value}") from None
    return arguments

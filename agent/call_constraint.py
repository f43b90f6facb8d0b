"""Schema-constrained decoding of tool calls: string values the model may not invent.

While the model writes a call (`name` / ```` ```python ```` / `tool_call(arg='...')`), the value of a
string argument is held to what the tool's schema allows:

- an argument with an `enum` continues one of its values and closes only on a whole one;
- a `Quoted` argument (a site, a date) is a span of the inspector's own words, any message of the
  conversation. Greedy decoding would commit to the span's first character alone, and a small model often
  starts one character late (`庄500kV变电站` for `峰庄500kV变电站`); so at the opening quote the backend
  scores whole spans instead (`span_starts`, then `follow` the most likely one: the model's own
  probability of the span and of the closing quote after it) and the value is written in one go. A site
argument knows the database's sites (the names that each name one site: the resolver's name, alias or
normalised form, not its fuzzy match): a best span that names none gives way to one that does and that
contains it (the model stopped early: `济南历` for `济南历下`) or lies inside it and is likelier to the model
alone (`济南` in `济南2024-05-32`); see `choose_span`.

A report (a plain message after the turn's observations) is held to the verifier's rule as it is written:
a run of digits may only spell a number the turn's observations report — a count (a JSON number) or a
number inside a tool's error, which a report quotes — and ends only on a whole one (agent/verifier.py
rejects any other number afterwards; this keeps the model from writing one). The digits of a date or an
image path are not numbers a report states. A report of a failed check quotes a tool's error (the
`failed` template of prompts/reports.toml): once the template's words before the error are written, the
rest spells one of the turn's observed errors, whole — the verifier's rule again, where the model would
otherwise retype a long file name or a list of sites from memory.

A turn is about one site on one day (the agent refuses a request naming two sites, and every call of a turn
in the data names the same ones): a quoted argument that a call earlier in the turn gave, and that its tool
answered without an error, is repeated as given — where the model would otherwise look the name up again and
could cut it (`济南历下`, then `济南历`) — and an optional argument those calls did not give is not added
(`count_people(site='济南历下', date='查')` after a work order asked without a date).

Between values a call follows its grammar: `, name='` for an argument of its tool not yet named, or `)` once
its required arguments are in (a repeated keyword, or free text there, would not even parse).

Everything else (which tool, which arguments, the verdict) stays the model's greedy choice. Matching is done
on bytes, so it holds for any tokenizer, byte-fallback pieces and pieces that span several characters
included.
"""

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from agent.chatglm_format import Message, ToolCall, message_text, parse_assistant
from agent.errors import MalformedToolCall
from agent.reports import error_of
from prompts import load
from tools.registry import Tool
from tools.sites import normalise

_TOOL_NAME = re.compile(rb"\s*([A-Za-z_]\w*)\s*\n")
_NAMED = re.compile(rb"(?:\(|,)\s*(\w+)\s*=")
_OPEN_VALUE = re.compile(rb"tool_call\((?:.*,)?\s*(\w+)\s*=\s*'([^'\\]*)\Z", re.DOTALL)
_DIGITS = re.compile(rb"[0-9]+")
_TRAILING_DIGITS = re.compile(rb"[0-9]*\Z")
_CONTINUATION_BYTE = range(0x80, 0xC0)
SPAN_BYTES = 96  # the longest quoted value considered: 32 Chinese characters


@dataclass(frozen=True)
class Rule:
    """What one argument's value may be: one of `enum`, or (`quoted`) a span of the inspector's words.

    `registered`: the normalised names (tools/sites.py) that name one site each, for a site argument.
    """

    enum: tuple[bytes, ...] = ()
    quoted: bool = False
    registered: frozenset[str] = frozenset()


class Vocabulary:
    """The token ids by their bytes (`every`; `by_bytes` without a quote; `closing` by what precedes the quote)."""

    def __init__(self, token_bytes: list[bytes]) -> None:
        self.token_bytes = token_bytes
        self.every: dict[bytes, list[int]] = defaultdict(list)
        self.by_bytes: dict[bytes, list[int]] = defaultdict(list)
        self.closing: dict[bytes, list[int]] = defaultdict(list)
        for token, text in enumerate(token_bytes):
            if text:
                self.every[text].append(token)
            if b"'" in text:
                self.closing[text[: text.index(b"'")]].append(token)
            elif text:
                self.by_bytes[text].append(token)
        self.longest = max(map(len, self.by_bytes), default=0)
        self.longest_any = max(map(len, self.every), default=0)
        self.quotes = sorted(self.closing.get(b"", ()))
        self.parens = [t for t, text in enumerate(token_bytes) if text.startswith(b")")]
        self.with_digits = [t for t, text in enumerate(token_bytes) if _DIGITS.search(text)]
        self.without_digits = [t for t, text in enumerate(token_bytes) if text and not _DIGITS.search(text)]
        self.empty = [t for t, text in enumerate(token_bytes) if not text]

    def spell(self, text: bytes) -> list[int]:
        """Ids whose bytes are `text` (up to a byte no piece spells), longest piece first."""
        ids: list[int] = []
        while text:
            size = next((n for n in range(min(self.longest, len(text)), 0, -1) if text[:n] in self.by_bytes), 0)
            if not size:
                break
            ids.append(self.by_bytes[text[:size]][0])
            text = text[size:]
        return ids

    def prefixes(self, rest: bytes, *, quotes: bool = False) -> set[int]:
        """Ids whose bytes are a non-empty prefix of `rest` (pieces with a quote in them only if `quotes`)."""
        table, longest = (self.every, self.longest_any) if quotes else (self.by_bytes, self.longest)
        found: set[int] = set()
        for size in range(1, min(longest, len(rest)) + 1):
            found.update(table.get(rest[:size], ()))
        return found

    def closers(self, rest: bytes, *, whole: bool, empty: bool) -> set[int]:
        """Ids that close the string after a prefix of `rest` (all of it when `whole`; none of it only if `empty`)."""
        if whole:
            return set(self.closing.get(rest, ()))
        return {
            token
            for before, tokens in self.closing.items()
            if rest.startswith(before) and (before or empty)
            for token in tokens
        }


@dataclass(frozen=True)
class Span:
    """A candidate quoted value: its bytes and ids, the model's log-probability of it and of the closing quote
    after it (`raw`), and that plus the span bonus (`score`)."""

    text: bytes
    ids: list[int]
    raw: float
    score: float


def choose_span(spans: list[Span], registered: Callable[[bytes], bool]) -> Span:
    """The best-scoring span, unless it names no site of the database and a span that names one is at hand:

    - inside a longer span that names a site (the model stopped early or started late: `济南历` in
      `济南历下`), the best such span is taken;
    - around shorter spans that the model alone finds likelier, one of which names a site (the bonus took the
      words after the name in: `济南2024-05-32` around `济南`), the name is what the model reads alone: the
      likeliest of those spans, or the best of them that name a site around it. So `青岛市2024-05-30` gives
      `青岛市`, which the model reads as a whole, not the site `青岛` inside it that it finds far less likely.

    A span that names no site stays where neither holds (`青岛市` around the site `青岛`): an unknown or
    ambiguous name goes to the tool as said, which answers with the candidates.
    """
    best = max(spans, key=lambda span: span.score)
    if registered(best.text):
        return best
    wider = [s for s in spans if best.text in s.text and registered(s.text)]  # registered, so not `best` itself
    if wider:
        return max(wider, key=lambda span: span.score)
    likelier = [s for s in spans if s.text in best.text and s.raw > best.raw]
    if not any(registered(s.text) for s in likelier):
        return best
    alone = max(likelier, key=lambda span: span.raw)
    named = [s for s in likelier if alone.text in s.text and registered(s.text)]
    return max(named or [alone], key=lambda span: span.score)


class CallConstraint:
    """Every tool's arguments (all, and the required ones), and the rules of their values by (tool, argument)."""

    def __init__(
        self,
        arguments: dict[str, tuple[frozenset[str], frozenset[str]]],
        rules: dict[tuple[str, str], Rule],
    ) -> None:
        self.arguments = arguments
        self.rules = rules

    @classmethod
    def of(cls, tools: Iterable[Tool], sites: frozenset[str] = frozenset()) -> "CallConstraint":
        """The rules of `tools`' arguments; `sites`: the unambiguous names of the database's sites."""
        arguments, rules = {}, {}
        for tool in tools:
            parameters = tool.description["parameters"]
            required = frozenset(parameters.get("required", ()))
            arguments[tool.name] = (frozenset(parameters["properties"]), required)
            for name, schema in parameters["properties"].items():
                enum = tuple(str(value).encode("utf-8") for value in schema.get("enum", ()))
                if enum or name in tool.quoted:
                    registered = sites if name in tool.sites else frozenset()
                    rules[tool.name, name] = Rule(enum, name in tool.quoted, registered)
        return cls(arguments, rules)

    def for_conversation(
        self, messages: list[Message], vocabulary: Vocabulary, restore: Callable[[str], str] = str
    ) -> "ConversationConstraint":
        """The constraint on the next assistant message of a conversation.

        `restore` gives a span of the messages its own characters back (the backend's stand-ins).
        """
        words = [m.content.encode("utf-8") for m in messages if m.role == "user"]
        turn = messages[max((i for i, m in enumerate(messages) if m.role == "user"), default=-1) + 1 :]
        observed = [m.content.encode("utf-8") for m in turn if m.role == "observation"]
        numbers = Numbers(frozenset(n for text in observed for n in reported(text)), vocabulary) if observed else None
        errors = [error for text in observed if (error := error_text(text))]
        quoted = Quotes(errors, error_lead(), vocabulary) if errors else None
        given = self.given(turn)
        repeated = {key: Rule((given[key[1]],)) for key, rule in self.rules.items() if rule.quoted and key[1] in given}
        constraint = CallConstraint(self.without_absent(given), {**self.rules, **repeated}) if repeated else self
        return ConversationConstraint(constraint, vocabulary, words, numbers, quoted, restore)

    def without_absent(self, given: dict[str, bytes]) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """Every tool's arguments less the optional ones that the turn's answered calls did not give: a check's
        calls are for one site on one day, so a work order asked without a date is not followed by a dated
        detection, nor by one of an image (no call in the training data names one)."""
        return {tool: (required | (known & set(given)), required) for tool, (known, required) in self.arguments.items()}

    def given(self, turn: list[Message]) -> dict[str, bytes]:
        """The quoted values of the turn's calls so far whose tool answered without an error, by argument."""
        given: dict[str, bytes] = {}
        for message, answer in pairwise(turn):
            if message.role != "assistant" or answer.role != "observation" or error_text(answer.content.encode()):
                continue
            try:
                call = parse_assistant(message_text(message))
            except MalformedToolCall:
                continue
            if isinstance(call, ToolCall):
                for name, value in call.arguments.items():
                    rule = self.rules.get((call.name, name))
                    if rule is not None and rule.quoted and isinstance(value, str) and value:
                        given.setdefault(name, value.encode("utf-8"))
        return given


def error_lead() -> bytes:
    """The words a failed check's report writes right before the tool's error (`] 无法完成: `)."""
    return load("reports")["failed"].split("{error}")[0].split("{check}")[-1].encode("utf-8")


def json_object(observation: bytes) -> dict[str, Any] | None:
    """A tool's observation as the JSON object this project's tools answer with; None for any other text."""
    try:
        value = json.loads(observation)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def error_text(observation: bytes) -> bytes | None:
    """The error of a tool's JSON observation, as a report quotes it; None for a result or other text."""
    value = json_object(observation)
    error = error_of(value) if value is not None else None
    return error.encode("utf-8") if error is not None else None


def reported(observation: bytes) -> set[bytes]:
    """The numbers a report may state from one observation: its counts, and the digits of its error.

    An observation that is not a JSON object (a tool outside this project) offers every run of its digits.
    """
    value = json_object(observation)
    if value is None:
        return set(_DIGITS.findall(observation))
    numbers = {str(n).encode() for n in value.values() if isinstance(n, int) and not isinstance(n, bool)}
    return numbers | set(_DIGITS.findall((error_of(value) or "").encode("utf-8")))


class Numbers:
    """The pieces that keep a report's digits to the observations' numbers, by the digits written last."""

    def __init__(self, numbers: frozenset[bytes], vocabulary: Vocabulary) -> None:
        self.numbers = numbers
        self.prefixes = {number[:size] for number in numbers for size in range(1, len(number) + 1)}
        self.vocabulary = vocabulary
        self._cache: dict[bytes, list[int]] = {}

    def allowed(self, written: bytes) -> list[int]:
        run = _TRAILING_DIGITS.search(written).group()  # type: ignore[union-attr]
        if run not in self._cache:
            vocabulary = self.vocabulary
            pieces = vocabulary.token_bytes
            whole = not run or run in self.numbers  # the digits so far may end here
            digits = [token for token in vocabulary.with_digits if self._fits(run + pieces[token])]
            self._cache[run] = sorted(digits + (vocabulary.without_digits + vocabulary.empty if whole else []))
        return self._cache[run]

    def _fits(self, text: bytes) -> bool:
        """Whether `text` spells whole observed numbers, the last one possibly unfinished."""
        return all(
            match.group() in (self.prefixes if match.end() == len(text) else self.numbers)
            for match in _DIGITS.finditer(text)
        )


class Quotes:
    """The pieces that keep a failed check's report to quoting one of the observed errors, whole."""

    def __init__(self, errors: list[bytes], lead: bytes, vocabulary: Vocabulary) -> None:
        self.errors = errors
        self.lead = lead
        self.vocabulary = vocabulary
        self._cache: dict[bytes, list[int] | None] = {}

    def allowed(self, written: bytes) -> list[int] | None:
        """None before the lead (or once the text has left every error); else what continues an error."""
        at = written.find(self.lead)
        if at < 0:
            return None
        so_far = written[at + len(self.lead) :]
        if so_far not in self._cache:
            rests = [error[len(so_far) :] for error in self.errors if error.startswith(so_far)]
            found = set().union(*(self.vocabulary.prefixes(rest, quotes=True) for rest in rests if rest))
            ends = self.vocabulary.empty if b"" in rests else []
            self._cache[so_far] = sorted(found.union(ends)) or None
        return self._cache[so_far]


def _fits(literals: list[bytes], after: bytes) -> bool:
    """Whether `after` (what a closing piece adds after its quote) is on the way to one of `literals`."""
    return any(literal.startswith(after) or (literal == b")" and after.startswith(b")")) for literal in literals)


class ConversationConstraint:
    """The allowed next tokens of one assistant message being generated, given the bytes written so far."""

    def __init__(
        self,
        constraint: CallConstraint,
        vocabulary: Vocabulary,
        words: list[bytes],
        numbers: Numbers | None = None,
        quoted: Quotes | None = None,
        restore: Callable[[str], str] = str,
    ) -> None:
        self.arguments = constraint.arguments
        self.rules = constraint.rules
        self.vocabulary = vocabulary
        self.words = words
        self.numbers = numbers
        self.quoted = quoted
        self.restore = restore
        self.written = bytearray()
        self._cache: dict[tuple[Rule, bytes], list[int] | None] = {}
        self._between: dict[tuple[str, frozenset[str], bytes, bool], list[int] | None] = {}
        self._plan: list[int] = []
        self._closing = False

    def add(self, token: int) -> None:
        self.written += self.vocabulary.token_bytes[token]
        if self._plan:
            self._plan.pop(0)
            self._closing = not self._plan
        else:
            self._closing = False

    def span_starts(self) -> list[bytes] | None:
        """At the opening quote of a quoted value: the bytes from each place in the words the value may start."""
        state = self._state()
        if state is None or self._plan or self._closing or not state[0].quoted or state[1]:
            return None
        return [rest[:SPAN_BYTES].decode("utf-8", "ignore").encode("utf-8") for rest in self._rests(*state)]

    def registered(self, span: bytes) -> bool:
        """Whether `span`, as the value being opened, names exactly one of the database's sites."""
        state = self._state()
        forms = state[0].registered if state else frozenset()
        return bool(forms) and normalise(self.restore(span.decode("utf-8"))) in forms

    def follow(self, tokens: list[int]) -> None:
        """Write `tokens` next, then close the value (the model picks the closing piece)."""
        self._plan = list(tokens)

    def allowed(self) -> list[int] | None:
        """The ids the next token must be one of, or None where nothing constrains it."""
        if self._plan:
            return self._plan[:1]
        name = _TOOL_NAME.match(self.written)
        tool = name.group(1).decode() if name else ""
        if tool in self.arguments and b"tool_call(" in self.written:
            return self._in_call(tool, bytes(self.written).partition(b"tool_call(")[2])
        if self.numbers is None or name:
            return None
        written = bytes(self.written)
        quoting = self.quoted.allowed(written) if self.quoted else None
        return quoting if quoting is not None else self.numbers.allowed(written)

    def _in_call(self, tool: str, call: bytes) -> list[int] | None:
        """In the arguments of a call to `tool` (the bytes after `tool_call(`)."""
        named = frozenset(n.decode() for n in _NAMED.findall(b"(" + call))
        if call.count(b"'") % 2 == 0:
            tail = call[call.rfind(b"'") + 1 :]
            if b")" in tail:
                return None  # the call is closed
            key = (tool, named, tail, b"'" in call)
            if key not in self._between:
                self._between[key] = self._continuing(self._literals(tool, named, first=b"'" not in call), tail)
            return self._between[key]
        state = self._state()
        if self._closing:
            allowed: list[int] | None = self.vocabulary.quotes
        elif state is None:
            return None
        else:
            if state not in self._cache:
                self._cache[state] = self._allowed(*state)
            allowed = self._cache[state]
        literals = self._literals(tool, named, first=False)
        pieces = self.vocabulary.token_bytes
        return [
            t for t in allowed or () if b"'" not in pieces[t] or _fits(literals, pieces[t].partition(b"'")[2])
        ] or None

    def _literals(self, tool: str, named: frozenset[str], *, first: bool) -> list[bytes]:
        """What may come between values: the next argument's `name='` (after `, ` unless `first`), or `)`."""
        known, required = self.arguments[tool]
        lead = [b""] if first else [b",", b", "]
        literals = [start + name.encode() + b"='" for name in sorted(known - named) for start in lead]
        return [*literals, b")"] if required <= named else literals

    def _continuing(self, literals: list[bytes], tail: bytes) -> list[int] | None:
        """The ids that continue `tail` along one of `literals` (any id starting `)` where `)` may follow)."""
        every = self.vocabulary.every
        found: set[int] = set()
        for literal in literals:
            if literal.startswith(tail):
                rest = literal[len(tail) :]
                for size in range(1, len(rest) + 1):
                    found.update(every.get(rest[:size], ()))
        if tail == b"" and b")" in literals:
            found.update(self.vocabulary.parens)
        return sorted(found) or None

    def _state(self) -> tuple[Rule, bytes] | None:
        """The rule of the string value being written, and its bytes so far; None outside such a value."""
        name = _TOOL_NAME.match(self.written)
        value = _OPEN_VALUE.search(self.written)
        if name is None or value is None:
            return None
        rule = self.rules.get((name.group(1).decode(), value.group(1).decode()))
        return None if rule is None else (rule, value.group(2))

    def _allowed(self, rule: Rule, so_far: bytes) -> list[int] | None:
        vocabulary = self.vocabulary
        found: set[int] = set()
        for rest in self._rests(rule, so_far):
            found |= vocabulary.prefixes(rest)
            found |= vocabulary.closers(rest, whole=bool(rule.enum), empty=bool(so_far))
        return sorted(found) or None

    def _rests(self, rule: Rule, so_far: bytes) -> list[bytes]:
        """What may follow `so_far` inside the value."""
        if rule.enum:
            return [value[len(so_far) :] for value in rule.enum if value.startswith(so_far)]
        rests = []
        for text in self.words:
            start = text.find(so_far)
            while start >= 0:
                rest = text[start + len(so_far) :]
                if so_far or (rest and rest[0] not in _CONTINUATION_BYTE):
                    rests.append(rest)
                start = text.find(so_far, start + 1)
        return rests

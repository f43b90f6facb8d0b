"""Multi-turn memory: whole turns, cut from the oldest so that the prompt fits the model's context.

A turn is kept or dropped whole — the user's words, every tool call with its observation, the reply — so a
tool call is never kept without its observation. The system message (the tools), if any, is always first.

With `fresh_after_check` (the model's prompting.json says so) a turn that ran a tool closes the conversation
before it: the next prompt holds only the turns after it — greetings, ask-backs and their answers. Every
inspection names its own site and day, so no later request needs an earlier check's messages, and the shipped
default writes a request's calls worse after a finished check than alone (README: the chat's memory).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.chatglm_format import Message

TokenCounter = Callable[[list[Message]], int]


@dataclass
class Memory:
    """The conversation so far, and a token budget for the prompt it yields."""

    system: Message | None  # the tools' system message, when the model is prompted with one
    count_tokens: TokenCounter
    budget: int
    fresh_after_check: bool = False
    turns: list[list[Message]] = field(default_factory=list)

    def prompt(self, current: list[Message]) -> list[Message]:
        """System message, the most recent whole turns that fit (since the last check, with
        `fresh_after_check`), then the current turn's messages."""
        head = [self.system] if self.system else []
        kept: list[list[Message]] = []
        for turn in reversed(self.turns):
            if self.fresh_after_check and any(message.role == "observation" for message in turn):
                break
            candidate = [*head, *(m for t in [turn, *kept] for m in t), *current]
            if self.count_tokens(candidate) > self.budget:
                break
            kept.insert(0, turn)
        return [*head, *(m for turn in kept for m in turn), *current]

    def remember(self, turn: list[Message]) -> None:
        self.turns.append(turn)

    def reset(self) -> None:
        self.turns.clear()

    def fresh(self) -> "Memory":
        """An empty memory with the same system message, token counter and budget."""
        return Memory(self.system, self.count_tokens, self.budget, self.fresh_after_check)

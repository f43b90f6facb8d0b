"""A scripted language model for tests: it answers from a list, or with a function of the conversation."""

from collections.abc import Callable

from agent.backend import Generation, ModelBackend
from agent.chatglm_format import Message


class ScriptedBackend(ModelBackend):
    """Replies with `script(conversation)`; records every conversation it was asked about."""

    def __init__(self, script: Callable[[list[Message]], str]) -> None:
        self.script = script
        self.seen: list[list[Message]] = []

    def generate(self, conversations: list[list[Message]], max_new_tokens: int = 128) -> list[Generation]:
        self.seen += conversations
        return [Generation(text=self.script(conversation), decode_s=0.001) for conversation in conversations]

"""The contract between the agent and a language model: one method, `generate`.

A backend receives whole conversations (ChatGLM3 messages) and returns, for each, the next assistant
message as text together with its token ids and timings. The agent never sees tensors; the scripted
model of the tests and the GLM backend are interchangeable.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from agent.chatglm_format import Message

StopReason = Literal["eos", "user", "observation", "length"]


@dataclass(frozen=True)
class Generation:
    """One generated assistant message: `text` as the agent reads it, `token_ids` as the model wrote it.

    The two differ only where the backend showed the model stand-ins for characters its tokenizer lacks
    (agent/stand_ins.py).
    """

    text: str
    token_ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    stop: StopReason = "eos"
    prefill_s: float = 0.0
    decode_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.prefill_s + self.decode_s


class ModelBackend(ABC):
    """A language model that writes the next assistant message of ChatGLM3 conversations."""

    @abstractmethod
    def generate(self, conversations: list[list[Message]], max_new_tokens: int = 128) -> list[Generation]:
        """The next assistant message of each conversation (batched where the backend can)."""

"""Tool failures, as the language model reads them and as a person reads them.

A tool that cannot answer raises `Failure` with a key of `prompts/observations.toml`. The registry turns
it into the observation `{"error": ..., "hint": ...}` the model was trained on; on the command line the
same failure is a one-line error, with the technical detail the model does not need.
"""

from typing import Any

from agent.errors import UserError
from prompts import load

Observation = dict[str, Any]


def _texts() -> dict[str, dict[str, str]]:
    return load("observations")


class Failure(UserError):
    """A tool could not answer; `key` names its message and hint in prompts/observations.toml."""

    def __init__(self, key: str, detail: str | None = None, **fields: object) -> None:
        self.key = key
        self.fields = fields
        self.message = _texts()["errors"][key].format(**fields)
        super().__init__(f"{self.message}: {detail}" if detail else self.message)

    def observation(self) -> Observation:
        return {"error": self.message, "hint": _texts()["hints"][self.key]}

"""How a model was trained to be prompted, saved beside it so the agent prompts it the same way.

ChatGLM3 puts the tools' descriptions in a leading system message, and so does every model trained here by
default. A small model trained on this task alone can learn the tools from the data instead; leaving the
system message out then saves most of each prompt. A model whose tokenizer lacks characters names the
`stand_ins` it reads them as (agent/stand_ins.py). `span_bonus` is the log-probability constrained decoding
adds per character of a quoted span the model could copy (agent/glm_backend.py), tuned on the model's own dev
split (bench/span_bonus.py). `fresh_after_check`: a request after a finished check is prompted as a
conversation of its own (agent/memory.py), for a model that handles a request worse after one than alone.
All are recorded in `prompting.json`; a folder without one (a converted ChatGLM3 checkpoint) gets ChatGLM3's
convention, no stand-ins, no bonus and the whole conversation in every prompt.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.errors import ConfigError

PROMPTING_FILE = "prompting.json"


@dataclass(frozen=True)
class Prompting:
    tools_in_system: bool = True
    stand_ins: str = ""
    span_bonus: float = 0.0
    fresh_after_check: bool = False

    def save(self, directory: Path) -> None:
        (directory / PROMPTING_FILE).write_text(json.dumps(asdict(self), ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def of(cls, directory: Path) -> "Prompting":
        path = directory / PROMPTING_FILE
        if not path.is_file():
            return cls()
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as err:
            raise ConfigError(f"{path} is not a prompting record: {err}") from None

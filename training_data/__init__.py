"""Training data for the inspector's language model: a seeded generator of ChatGLM3 fine-tuning dialogues.

The vocabularies (sentence frames, check words, site names, noise) are TOML files in this folder.
"""

import tomllib
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """The parsed contents of `training_data/<name>.toml`."""
    return tomllib.loads(files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8"))

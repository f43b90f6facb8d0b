"""Which model answers which question: a detector configuration maps each model's classes to roles.

A configuration lists YOLO checkpoints, each with a confidence threshold, an inference size and a map
from its class names to roles. Users drop in their own weights by writing (or training) a new
configuration, never by changing code. It is read from TOML or JSON and saved as JSON beside the weights.
"""

import importlib.util
import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError

Role = Literal["person", "head", "helmet", "no_helmet", "equipment"]
HEAD_ROLES: tuple[Role, ...] = ("head", "helmet", "no_helmet")
PACKAGE_PREFIX = "package:"


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    # A local path (relative paths are relative to the configuration file) or `package:<package>/<file>`.
    weights: str = Field(min_length=1)
    classes: dict[str, Role] = Field(min_length=1)
    confidence: float = Field(default=0.25, gt=0, lt=1)
    image_size: int = Field(default=640, ge=32, le=4096)
    # One box per object whatever its class: a head is "with helmet" or "without", never both.
    agnostic_nms: bool = True


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[ModelSpec, ...] = Field(min_length=1)

    @property
    def roles(self) -> set[Role]:
        return {role for spec in self.models for role in spec.classes.values()}


def load_config(path: Path) -> DetectorConfig:
    """A configuration from a .toml or .json file; any problem is one ConfigError line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read detector configuration {path}: {error.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return DetectorConfig.model_validate(data)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {error}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"{path}: {problems}") from None


def save_config(config: DetectorConfig, path: Path) -> None:
    path.write_text(json.dumps(config.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def local_file(reference: str, folder: Path) -> Path:
    """The existing local file `reference` names: `package:<package>/<file>` inside an installed package,
    or a path (relative to `folder`). Nothing is looked up online."""
    if reference.startswith(PACKAGE_PREFIX):
        package, _, inner = reference.removeprefix(PACKAGE_PREFIX).partition("/")
        found = importlib.util.find_spec(package) if package.isidentifier() else None
        if found is None or not found.submodule_search_locations:
            raise ConfigError(f"package {package!r} is not installed (see requirements-models.lock)")
        path = Path(found.submodule_search_locations[0]) / inner
    else:
        path = folder / Path(reference).expanduser()
    if not path.is_file():
        raise ConfigError(f"no weights file at {path}")
    return path.resolve()


def weights_path(spec: ModelSpec, config_path: Path) -> Path:
    """The explicit local weights file of a model; it must exist. Nothing is downloaded."""
    try:
        return local_file(spec.weights, config_path.parent)
    except ConfigError as error:
        raise ConfigError(f"model {spec.name}: {error}") from None

"""Training a detector on your own photos: ultralytics training, offline, ending in a detector config.

The dataset is in YOLO format (a data.yaml naming its train/val folders and classes). The result is a
folder with `weights.pt`, `detector.json` (the weights' classes mapped to roles, ready for `--detector`),
`training.json` (how it was trained), `data.yaml` (the dataset as trained on) and ultralytics' `run/`.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field

from agent.errors import ConfigError, UserError
from tools.detector import Detector
from tools.detector_config import DetectorConfig, ModelSpec, Role, local_file, save_config

ROLES: tuple[Role, ...] = get_args(Role)
# Fine-tune from the shipped person detector unless told otherwise.
DEFAULT_BASE = "package:fall_detection/models/best.pt"


class Training(BaseModel):
    """What a detector was trained from and how; saved as training.json beside the weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str
    base: str  # a local .pt file, `package:<package>/<file>`, or an ultralytics architecture such as yolov8n.yaml
    classes: dict[str, Role] = Field(min_length=1)
    epochs: int = Field(default=50, ge=1)
    image_size: int = Field(default=640, ge=32)
    batch: int = Field(default=16, ge=1)
    device: str = "cpu"
    seed: int = 0
    confidence: float = Field(default=0.25, gt=0, lt=1)


@dataclass(frozen=True)
class Dataset:
    spec: dict[str, Any]  # the data.yaml with `path` absolute and no `download` key
    classes: list[str]


def read_dataset(data: Path) -> Dataset:
    """A YOLO data.yaml whose train and val folders exist; a relative `path` is relative to the file."""
    try:
        spec = yaml.safe_load(data.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"cannot read dataset {data}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{data}: not valid YAML ({error})") from None
    if not isinstance(spec, dict) or not {"train", "val", "names"} <= spec.keys():
        raise UserError(f"{data}: a YOLO dataset file needs train, val and names")
    root = (data.parent / str(spec.get("path", ""))).resolve()
    for split in ("train", "val"):
        for folder in spec[split] if isinstance(spec[split], list) else [spec[split]]:
            if not (root / str(folder)).exists():
                raise UserError(f"{data}: the {split} images {root / str(folder)} do not exist")
    names = spec["names"]
    classes = [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(name) for name in names]
    resolved = {key: value for key, value in spec.items() if key != "download"} | {"path": str(root)}
    return Dataset(resolved, classes)


def roles(classes: list[str], requested: list[str]) -> dict[str, Role]:
    """Class → role: each `CLASS=ROLE` asked for, and every class named like a role; others are ignored."""
    mapped = {name: cast(Role, name) for name in classes if name in ROLES}
    for item in requested:
        name, _, role = item.partition("=")
        if name not in classes:
            raise UserError(f"--role {item}: the dataset has no class {name!r}; its classes are {', '.join(classes)}")
        if role not in ROLES:
            raise UserError(f"--role {item}: {role!r} is not a role; roles are {', '.join(ROLES)}")
        mapped[name] = cast(Role, role)
    if not mapped:
        raise UserError(f"no class of the dataset has a role; map one with --role CLASS=ROLE ({', '.join(ROLES)})")
    return mapped


def _base_model(base: str) -> Any:
    from ultralytics import YOLO

    if base.endswith((".yaml", ".yml")) and not base.startswith("package:"):
        try:
            return YOLO(base)  # an architecture, built untrained from ultralytics' own configuration files
        except FileNotFoundError:
            raise ConfigError(f"{base}: no such model architecture in ultralytics") from None
    from tools import yolo

    return yolo.open_checkpoint(local_file(base, Path.cwd()))


def train(training: Training, out: Path) -> Path:
    """Train, then write weights.pt, detector.json and training.json into `out`; returns detector.json."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from agent.torch_compat import ensure_torchvision

    ensure_torchvision()
    import torch

    out.mkdir(parents=True, exist_ok=True)
    (out / "training.json").write_text(json.dumps(training.model_dump(), ensure_ascii=False, indent=2) + "\n")
    # Ultralytics reads a relative `path` against its own datasets folder; train on a resolved copy.
    (out / "data.yaml").write_text(yaml.safe_dump(read_dataset(Path(training.data)).spec, allow_unicode=True))
    threads = torch.get_num_threads()
    model = _base_model(training.base)
    model.train(
        data=str(out / "data.yaml"),
        epochs=training.epochs,
        imgsz=training.image_size,
        batch=training.batch,
        device=training.device,
        seed=training.seed,
        deterministic=True,
        workers=0,
        plots=False,
        project=str(out.resolve()),
        name="run",
        exist_ok=True,
        verbose=False,
    )
    torch.set_num_threads(threads)
    produced = out / "run" / "weights"
    shutil.copyfile(next(p for p in (produced / "best.pt", produced / "last.pt") if p.is_file()), out / "weights.pt")
    spec = ModelSpec(
        name=out.name,
        weights="weights.pt",
        classes=training.classes,
        confidence=training.confidence,
        image_size=training.image_size,
    )
    config = DetectorConfig(models=(spec,))
    save_config(config, out / "detector.json")
    Detector(config, out / "detector.json")  # the trained classes must be the ones mapped
    return out / "detector.json"

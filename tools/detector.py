"""The configured YOLO models run together on a batch of images and report boxes with roles."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ConfigError
from tools import yolo
from tools.detector_config import DetectorConfig, ModelSpec, Role, load_config, weights_path
from tools.scene import Box


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    weights: Path
    model: Any  # ultralytics.YOLO
    roles: dict[int, Role]  # class index -> role, for the classes the configuration maps


def _load(spec: ModelSpec, config_path: Path) -> LoadedModel:
    weights = weights_path(spec, config_path)
    model = yolo.load(weights)
    index = {name: i for i, name in model.names.items()}
    unknown = [name for name in spec.classes if name not in index]
    if unknown:
        raise ConfigError(
            f"{config_path}: model {spec.name} has no class {', '.join(map(repr, unknown))}; "
            f"its classes are {', '.join(map(repr, index))}"
        )
    return LoadedModel(spec, weights, model, {index[name]: role for name, role in spec.classes.items()})


class Detector:
    """All models of one configuration, loaded once."""

    def __init__(self, config: DetectorConfig, config_path: Path) -> None:
        self.config = config
        self.models = [_load(spec, config_path) for spec in config.models]
        self.persons_from_heads = "person" not in config.roles

    def detect(self, images: list[np.ndarray]) -> list[list[Box]]:
        """The mapped boxes of each image (BGR arrays), every model run once per image size in the batch.

        Images of one size are letterboxed alike whether they come alone or in a batch, so an image
        gets the same boxes either way.
        """
        found: list[list[Box]] = [[] for _ in images]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(image.shape, []).append(i)
        for loaded in self.models:
            for indices in by_size.values():
                for i, result in zip(indices, self._predict(loaded, [images[i] for i in indices]), strict=True):
                    found[i].extend(self._boxes(loaded, result))
        return found

    @staticmethod
    def _predict(loaded: LoadedModel, images: list[np.ndarray]) -> list[Any]:
        spec = loaded.spec
        return loaded.model.predict(
            images, conf=spec.confidence, imgsz=spec.image_size, agnostic_nms=spec.agnostic_nms, verbose=False
        )

    @staticmethod
    def _boxes(loaded: LoadedModel, result: Any) -> list[Box]:
        b = result.boxes
        return [
            Box(loaded.roles[int(index)], loaded.model.names[int(index)], confidence, *corners)
            for index, confidence, corners in zip(b.cls.tolist(), b.conf.tolist(), b.xyxy.tolist(), strict=True)
            if int(index) in loaded.roles
        ]


@cache
def load_detector(config_path: Path) -> Detector:
    """The detector a configuration file describes, loaded once per process."""
    return Detector(load_config(config_path), config_path)

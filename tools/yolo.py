"""Loading a YOLO checkpoint: from an explicit local file, offline, without losing CPU threads."""

import os
from functools import cache
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from tools.area_attention import adapt


def _restore_pil_open() -> None:
    """Undo ultralytics' patch of PIL's `Image.open`, which answers any file PIL cannot identify by trying to
    install and import the pi-heif package: a text file named .jpg must be a clear error, and nothing is
    installed at run time."""
    from PIL import Image
    from ultralytics.utils import patches

    if Image.open is patches.image_open:
        Image.open = patches._image_open


def open_checkpoint(weights: Path) -> Any:
    """A new ultralytics YOLO detection model from a local checkpoint (YOLO_OFFLINE: nothing is fetched)."""
    if not weights.is_file():
        raise ConfigError(f"no weights file at {weights}")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from agent.torch_compat import ensure_torchvision

    ensure_torchvision()
    from ultralytics import YOLO

    _restore_pil_open()
    try:
        model = YOLO(str(weights), task="detect")
    except Exception as error:  # unpickling a foreign file can fail in any way
        raise ConfigError(f"{weights}: not a YOLO checkpoint ({error.__class__.__name__}: {error})") from None
    if model.task != "detect":
        raise ConfigError(f"{weights}: a YOLO {model.task} model, not a detection model")
    adapt(model.model)
    return model


@cache
def load(weights: Path) -> Any:
    """The checkpoint ready to predict, loaded once per process.

    Ultralytics' device set-up, which lowers torch to one thread less than the machine has, runs during a
    warm-up whose thread count is then restored.
    """
    import numpy as np
    import torch

    threads = torch.get_num_threads()
    model = open_checkpoint(weights)
    model.predict(np.zeros((32, 32, 3), dtype=np.uint8), verbose=False)
    torch.set_num_threads(threads)
    return model

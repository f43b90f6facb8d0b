"""Detection over many images: streamed in bounded batches, one bad image never stopping the rest."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import InspectorError, UserError
from tools import images
from tools.detector import Detector
from tools.scene import Person, people


@dataclass(frozen=True)
class Outcome:
    """One input's result: the people found in the image, or why it failed."""

    path: Path
    image: np.ndarray | None = None
    people: list[Person] | None = None
    error: InspectorError | None = None


def expand(inputs: Iterable[Path]) -> list[Path]:
    """Files as given, folders as the images they hold (recursively); an image-less folder stays as is."""
    paths: list[Path] = []
    for path in inputs:
        found = list(images.in_folder(path)) if path.is_dir() else []
        paths.extend(found or [path])
    return paths


def _loaded(path: Path) -> Outcome:
    if path.is_dir():
        return Outcome(path, error=UserError(f"{path}: a folder without images ({' '.join(images.SUFFIXES)})"))
    try:
        return Outcome(path, image=images.load(path))
    except InspectorError as error:
        return Outcome(path, error=error)


def detect_all(paths: Iterable[Path], detector: Detector, batch_size: int) -> Iterator[Outcome]:
    """Outcomes in input order; at most `batch_size` decoded images are held at a time."""
    pending: list[Outcome] = []

    def flush() -> Iterator[Outcome]:
        loaded = [outcome for outcome in pending if outcome.image is not None]
        found = iter(detector.detect([outcome.image for outcome in loaded])) if loaded else iter(())
        for outcome in pending:
            if outcome.image is None:
                yield outcome
            else:
                yield Outcome(outcome.path, outcome.image, people(next(found), detector.persons_from_heads))
        pending.clear()

    for path in paths:
        pending.append(_loaded(path))
        if sum(outcome.image is not None for outcome in pending) >= batch_size:
            yield from flush()
    yield from flush()

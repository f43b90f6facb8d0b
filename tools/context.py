"""What the tools need from the world, fixed when the registry is built."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_DATABASE = REPO / "data" / "demo" / "demo.sqlite"
DEFAULT_DETECTOR = Path(__file__).resolve().parent / "detectors" / "default.toml"


@dataclass(frozen=True)
class ToolContext:
    """The database, the detector configuration and the clock the tools answer from.

    Images are read only from the database's folder, the folders its image imports registered, and
    `image_roots`. Evidence images (boxes drawn) are written to `evidence_dir` when it is set.
    """

    database: Path = DEMO_DATABASE
    detector: Path = DEFAULT_DETECTOR
    image_roots: tuple[Path, ...] = ()
    evidence_dir: Path | None = None
    today: Callable[[], dt.date] = field(default=dt.date.today)

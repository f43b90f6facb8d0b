"""What every benchmark script shares: its arguments' defaults, the machine it ran on, its JSON, its inputs."""

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.machine import cpu_model
from agent.session import DEFAULT_MODEL

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "ultralytics", "sentencepiece")
DATA = Path("runs/data")
DEMO_IMAGES = Path(__file__).resolve().parent.parent / "data" / "demo" / "images"


def parser(doc: str, name: str, *, model: str = "", data: str = "") -> argparse.ArgumentParser:
    """The script's argument parser (its docstring's first paragraph as description) with `--out`, and with
    `--model` (the shipped default) and `--data` (`DATA`) where their help is given."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=report_file, default=Path("runs/bench") / f"{name}.json", help="JSON results")
    if model:
        parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=model)
    if data:
        parser.add_argument("--data", type=Path, default=DATA, help=data)
    return parser


def report_file(text: str) -> Path:
    """`--out`: the JSON file to write, refused before any work if it names a folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give the JSON file to write, such as {path / 'x.json'}")
    return path


def machine() -> dict[str, Any]:
    """Where and when a measurement runs, and the command that ran it."""
    import torch

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": [round(load, 2) for load in os.getloadavg()],
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {package: package_version(package) for package in PACKAGES},
    }


def package_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def save(report: dict[str, Any], out: Path) -> None:
    """Write the report as JSON, with the load average at the end beside the machine's at the start."""
    report = {**report, "load_average_after": [round(load, 2) for load in os.getloadavg()]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    Console().print(f"wrote {out}", highlight=False)


def show(title: str, columns: tuple[str, ...], rows: list[tuple[object, ...]], note: str = "") -> None:
    table = Table(*columns, title=title, caption=note or None)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console().print(table)


def percent(value: float | None) -> str:
    """A rate as the tables print it, or a dash where there was nothing to rate."""
    return "–" if value is None else f"{100 * value:.1f} %"


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds, with the sample count, as `inspector eval` computes them."""
    from agent.evaluate import _quantile

    if not seconds:
        return {"n": 0}
    return {
        "n": len(seconds),
        "p50_ms": round(1000 * _quantile(seconds, 0.5), 1),
        "p95_ms": round(1000 * _quantile(seconds, 0.95), 1),
    }


def split_file(data: Path, split: str) -> Path:
    """`data/<split>.jsonl`, generated first (as the shipped default's recipe generates it) where missing."""
    path = data / f"{split}.jsonl"
    if not path.is_file():
        from agent.default_model import Recipe
        from training_data.generate import generate_splits

        recipe = Recipe()
        Console().print(f"{path} is missing: generating the data (seed {recipe.seed}, size {recipe.data_size})")
        generate_splits(data, seed=recipe.seed, size=recipe.data_size)
    return path


def image_folder(folder: Path, count: int, source: Path = DEMO_IMAGES) -> Path:
    """`count` images in `folder`, copies of the images under `source` taken in turn, named 00000.jpg …

    The names carry no time stamp and the demo images no EXIF date, so each item is about "today".
    """
    from tools.images import in_folder

    images = list(in_folder(source))
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = images[index % len(images)]
        shutil.copyfile(image, folder / f"{index:05d}{image.suffix.lower()}")
    return folder


def training_speed(trainer: Any) -> dict[str, Any]:
    """Run a `Trainer` to its last step: samples/s and learned tokens/s of its last logging window (the
    warm-up steps left out once there are two windows), and the wall-clock seconds of the whole run."""
    import time

    from agent import train_log

    started = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - started
    windows = [record for record in train_log.read(trainer.out) if "examples_per_s" in record]
    last = windows[-1]
    return {
        "samples_per_s": round(last["examples_per_s"], 3),
        "tokens_per_s": round(last["tokens_per_s"], 1),
        "window": [windows[-2]["step"] + 1 if len(windows) > 1 else 1, last["step"]],
        "wall_seconds": round(seconds, 2),
        "loss": round(last["loss"], 4),
    }


def guarded(main: Callable[[], None]) -> None:
    """Run a script's `main`; an InspectorError (a missing model, a bad option) is one red line and exit 2."""
    from agent.errors import InspectorError

    try:
        main()
    except InspectorError as error:
        Console(stderr=True).print(f"error: {error}", style="red", highlight=False)
        raise SystemExit(2) from None

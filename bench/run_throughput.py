"""Scripted-run throughput: `inspector run` over a folder of images beside a bare ultralytics predict loop.

    .venv/bin/python bench/run_throughput.py --images 90 --rounds 2

Both run in this process on the same images and weights: the person model of the shipped detector
(tools/detectors/default.toml), which the run uses alone for `--check people` here (the shipped detector
also runs its helmet model on every image). Rounds alternate which of the two goes first. The run is the
whole `inspector run` call (the language model loaded; each item's turn with its work order, detection,
evidence image and report; results.jsonl and report.md), the bare loop `YOLO(weights).predict(image)` per
image with the same confidence, size and NMS; their ratio is what the agent costs on top of the detector.
"""

import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from common import guarded, image_folder, machine, parser, save, show

from tools.context import DEFAULT_DETECTOR
from tools.detector_config import ModelSpec

TARGET = 1.15


def person_detector(config: Path, folder: Path) -> tuple[Path, ModelSpec]:
    """A detector configuration holding only the configuration's person model, its weights an explicit path."""
    from tools.detector_config import DetectorConfig, load_config, save_config, weights_path

    spec = next(spec for spec in load_config(config).models if "person" in spec.classes.values())
    alone = spec.model_copy(update={"weights": str(weights_path(spec, config))})
    path = folder / "people.json"
    save_config(DetectorConfig(models=(alone,)), path)
    return path, alone


def bare_loop(spec: ModelSpec, paths: list[Path]) -> float:
    """Seconds of one `predict` per image on the person model (loaded and warmed up once per process)."""
    from tools import yolo

    model = yolo.load(Path(spec.weights))
    started = time.perf_counter()
    for path in paths:
        model.predict(
            str(path), conf=spec.confidence, imgsz=spec.image_size, agnostic_nms=spec.agnostic_nms, verbose=False
        )
    return time.perf_counter() - started


def inspector_run(folder: Path, site: str, detector: Path, model: Path, out: Path, batch: int) -> dict[str, Any]:
    """Seconds of the whole `inspector run --check people --batch-size BATCH` call, and how its items ended."""
    import typer

    from agent.inspection_run import RESULTS_FILE
    from agent.run_cli import CheckName, run
    from agent.run_results import Results

    started = time.perf_counter()
    with suppress(typer.Exit):  # exit code 1: some items failed, counted below
        run(
            out,
            images=folder,
            site=site,
            check=CheckName.people,
            model=model,
            detector=detector,
            audit=out / "audit.jsonl",
            batch_size=batch,
        )
    seconds = time.perf_counter() - started
    records = Results(out / RESULTS_FILE).records
    return {
        "seconds": seconds,
        "items_seconds": sum(record["seconds"] for record in records),
        "tools_seconds": sum(tool["seconds"] for record in records for tool in record["tools"]),
        "ok": sum(record["status"] == "ok" for record in records),
    }


def alternating(rounds: int, bare: Callable[[], float], agent: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """`rounds` measurements of both, the bare loop first in odd rounds and the run first in even ones."""
    measured = []
    for number in range(1, rounds + 1):
        if number % 2:
            seconds = bare()
            run = agent(number)
        else:
            run = agent(number)
            seconds = bare()
        measured.append({"first": "bare" if number % 2 else "run", "bare_seconds": seconds, **run})
    return measured


def main() -> None:
    parser_ = parser(__doc__, "run_throughput", model="language model folder")
    parser_.add_argument("--images", type=int, default=90, help="images in the folder (demo images in turn)")
    parser_.add_argument("--rounds", type=int, default=2, help="measurements of each, alternating the order")
    parser_.add_argument("--batch-size", type=int, default=16, help="inspector run --batch-size")
    parser_.add_argument("--site", default="济南工地", help="the site the images are said to show")
    parser_.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="whose person model to use")
    arguments = parser_.parse_args()

    where = machine()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        detector, spec = person_detector(arguments.detector, work)
        folder = image_folder(work / "images", arguments.images)
        paths = sorted(folder.iterdir())
        bare_loop(spec, paths[:1])  # warm-ups: the person model, then a one-image run (detector cache, imports)
        inspector_run(image_folder(work / "warm-up", 1), arguments.site, detector, arguments.model, work / "out-0", 1)
        rounds = alternating(
            arguments.rounds,
            lambda: bare_loop(spec, paths),
            lambda number: inspector_run(
                folder, arguments.site, detector, arguments.model, work / f"out-{number}", arguments.batch_size
            ),
        )

    images = arguments.images * len(rounds)
    bare, whole = sum(r["bare_seconds"] for r in rounds), sum(r["seconds"] for r in rounds)
    items, tools = sum(r["items_seconds"] for r in rounds), sum(r["tools_seconds"] for r in rounds)
    ratio = whole / bare
    measured = [
        ("bare ultralytics predict loop", bare),
        ("inspector run --check people, whole call", whole),
        ("  its items (results.jsonl seconds: share of each batch)", items),
        ("  its tool calls (detection, work order, evidence)", tools),
    ]
    ok = sum(r["ok"] for r in rounds)
    show(
        f"scripted-run throughput: {arguments.images} images × {len(rounds)} rounds, "
        f"batches of {arguments.batch_size}, person model {spec.name}",
        ("what", "images", "seconds", "images/s", "s/item", "× bare"),
        [
            (name, images, f"{s:.2f}", f"{images / s:.2f}" if s else "–", f"{s / images:.3f}", f"{s / bare:.2f}")
            for name, s in measured
        ],
        note=f"{ok}/{images} items ok; target ≤ {TARGET}× bare: {'met' if ratio <= TARGET else 'missed'}",
    )
    report = {
        "machine": where,
        "model": str(arguments.model),
        "weights": spec.weights,
        "images": arguments.images,
        "batch_size": arguments.batch_size,
        "rounds": [{**r, "ratio": r["seconds"] / r["bare_seconds"]} for r in rounds],
        "images_per_second": {"bare": images / bare, "run": images / whole, "run_items": images / items},
        "seconds_per_item": {"bare": bare / images, "run": whole / images, "run_items": items / images},
        "ratio": {"run_to_bare": ratio, "run_items_to_bare": items / bare, "target": TARGET, "met": ratio <= TARGET},
    }
    save(report, arguments.out)


if __name__ == "__main__":
    guarded(main)

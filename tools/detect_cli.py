"""`inspector detect`: the detection tools on image files, without any language model."""

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from agent.errors import UserError
from tools.context import DEFAULT_DETECTOR
from tools.detection import DetectionTool

DetectorOption = Annotated[
    Path,
    typer.Option("--detector", envvar="INSPECTOR_DETECTOR", help="Detector configuration (.toml or .json)."),
]


class CheckChoice(StrEnum):
    people = "people"
    helmets = "helmets"
    equipment = "equipment"


TABLE_COLUMNS: dict[DetectionTool, tuple[str, ...]] = {
    "count_people": (),
    "check_helmets": ("with helmet", "without", "unknown"),
    "check_equipment": ("with equipment", "without"),
}
TOOL_OF: dict[CheckChoice, DetectionTool] = {
    CheckChoice.people: "count_people",
    CheckChoice.helmets: "check_helmets",
    CheckChoice.equipment: "check_equipment",
}


def detect(
    inputs: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="Image files or folders of images.")],
    check: Annotated[CheckChoice, typer.Option(help="What to report about each image.")] = CheckChoice.helmets,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
    save: Annotated[Path | None, typer.Option(help="Folder for evidence images with the boxes drawn.")] = None,
    detector_path: DetectorOption = DEFAULT_DETECTOR,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per inference batch.")] = 8,
) -> None:
    """Count people, check helmets or check equipment in images; a bad image is reported, the rest go on."""
    from tools import evidence
    from tools.batch import detect_all, expand
    from tools.detection import observation, require_roles
    from tools.detector import load_detector
    from tools.detector_config import load_config

    tool = TOOL_OF[check]
    require_roles(tool, load_config(detector_path))
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    detector = load_detector(detector_path.resolve())
    for loaded in detector.models:
        errors.print(f"[dim]model {loaded.spec.name}: {loaded.weights}[/]")
    paths = expand(inputs)
    table = Table(Column("image", overflow="fold"), "persons", *TABLE_COLUMNS[tool])
    failed = 0
    columns = (TextColumn("detecting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=errors, transient=True) as progress:
        task = progress.add_task("detect", total=len(paths))
        for outcome in detect_all(paths, detector, batch_size):
            progress.advance(task)
            if outcome.error is not None:
                failed += 1
                errors.print(f"[red]error:[/] {escape(str(outcome.error))}")
                row = {"image": str(outcome.path), "error": str(outcome.error)}
            else:
                row = observation(tool, str(outcome.path), outcome.people)
                if save is not None:
                    evidence.save(outcome.image, outcome.people, str(outcome.path), tool, save)
            if json_lines:
                print(json.dumps(row, ensure_ascii=False), flush=True)
            else:
                table.add_row(*(str(value) for value in row.values()))
    if not json_lines:
        Console().print(table)
    if failed:
        raise UserError(f"{failed} of {len(paths)} image(s) could not be checked")


def train_detector(
    data: Annotated[Path, typer.Option(help="The dataset's YOLO data.yaml (train/val image folders, class names).")],
    out: Annotated[Path, typer.Option(help="Folder for weights.pt, detector.json and training.json.")] = Path(
        "runs/detector"
    ),
    role: Annotated[
        list[str] | None, typer.Option(help="CLASS=ROLE (person, head, helmet, no_helmet, equipment); repeatable.")
    ] = None,
    model: Annotated[
        str, typer.Option(help="Start from: a local .pt, package:<pkg>/<file>, or an architecture like yolov8n.yaml.")
    ] = "package:fall_detection/models/best.pt",
    epochs: Annotated[int, typer.Option(min=1)] = 50,
    image_size: Annotated[int, typer.Option(min=32, help="Training and inference image size.")] = 640,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    device: Annotated[str, typer.Option(help="cpu, or a CUDA device such as 0.")] = "cpu",
    seed: int = 0,
) -> None:
    """Train a YOLO detector on your own photos (offline) and write a detector config for it.

    Classes named like a role (person, helmet, ...) get that role; map others with --role, e.g. for the
    Safety-Helmet-Wearing-Dataset: --role hat=helmet --role person=no_helmet.
    """
    from tools.train_detector import Training, read_dataset, roles, train

    classes = read_dataset(data).classes
    mapped = roles(classes, role or [])
    console = Console(highlight=False, soft_wrap=True)
    ignored = [name for name in classes if name not in mapped]
    if ignored:
        console.print(f"[yellow]classes without a role, ignored when detecting:[/] {', '.join(ignored)}")
    training = Training(
        data=str(data.resolve()),
        base=model,
        classes=mapped,
        epochs=epochs,
        image_size=image_size,
        batch=batch,
        device=device,
        seed=seed,
    )
    config = train(training, out)
    console.print(f"weights: {out / 'weights.pt'}\ndetector config: {config}  (use it with --detector {config})")

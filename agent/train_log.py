"""The training log (JSONL, one record per logged step or evaluation) and its loss-curve PNG."""

import json
from pathlib import Path
from typing import Any

LOG_FILE = "train_log.jsonl"
CURVE_FILE = "loss_curve.png"


def append(directory: Path, record: dict[str, Any]) -> None:
    with (directory / LOG_FILE).open("a", encoding="utf-8") as log:
        log.write(json.dumps(record, ensure_ascii=False) + "\n")


def read(directory: Path) -> list[dict[str, Any]]:
    path = directory / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_after(directory: Path, step: int) -> None:
    """Drop records past `step`: a resumed run rewrites what the interrupted one logged after its checkpoint."""
    kept = [record for record in read(directory) if record["step"] <= step]
    (directory / LOG_FILE).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), "utf-8")


def plot(directory: Path) -> Path:
    """Draw train and dev loss against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read(directory)
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for key, label in (("loss", "train"), ("dev_loss", "dev")):
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            axes.plot(*zip(*points, strict=True), label=label, marker="." if key == "dev_loss" else None)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (mean per learned token)")
    axes.set_yscale("log")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = directory / CURVE_FILE
    figure.savefig(path)
    plt.close(figure)
    return path

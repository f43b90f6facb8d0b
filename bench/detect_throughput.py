"""Detection throughput: images per second over a folder, one image at a time versus in batches.

    .venv/bin/python bench/detect_throughput.py data/demo/images --limit 32 --batch-sizes 1 4 8 --json out/bench.json

Models are loaded and warmed up before timing; each run streams the folder through the same code as
`inspector detect` (decode, detect, judge). Prints a table and writes the numbers, with the machine they
were taken on, as JSON.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tools.batch import detect_all, expand
from tools.context import DEFAULT_DETECTOR
from tools.detector import load_detector

COLUMNS = ("batch size", "images", "failed", "seconds", "images/s")


def measure(paths: list[Path], config: Path, batch_size: int) -> dict[str, float]:
    detector = load_detector(config.resolve())
    started = time.perf_counter()
    outcomes = list(detect_all(paths, detector, batch_size))
    seconds = time.perf_counter() - started
    failed = sum(outcome.error is not None for outcome in outcomes)
    return {
        "batch_size": batch_size,
        "images": len(paths),
        "failed": failed,
        "seconds": round(seconds, 2),
        "images_per_second": round(len(paths) / seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="images to detect on (searched recursively)")
    parser.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="detector configuration")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8], help="1 is one by one")
    parser.add_argument("--limit", type=int, help="use only the first N images")
    parser.add_argument("--json", type=Path, default=Path("out/detect_throughput.json"), help="where to write results")
    arguments = parser.parse_args()

    paths = expand([arguments.folder])[: arguments.limit]
    detector = load_detector(arguments.detector.resolve())
    list(detect_all(paths[:1], detector, 1))  # warm-up outside the timing

    import torch

    machine = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
        "cuda": torch.cuda.is_available(),
    }
    runs = [measure(paths, arguments.detector, size) for size in arguments.batch_sizes]
    table = Table(*COLUMNS, title=f"detection throughput: {arguments.folder}")
    for run in runs:
        table.add_row(*(str(value) for value in run.values()))
    Console().print(table)
    Console().print(f"models: {', '.join(m.spec.name for m in detector.models)}; machine: {machine}", highlight=False)
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"folder": str(arguments.folder), "detector": str(arguments.detector), "machine": machine, "runs": runs}
    arguments.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Memory: peak resident set of `inspector chat` on piped requests, and of a scripted run as it grows.

    .venv/bin/python bench/memory.py --images 1000

Both run as the console script in a subprocess whose resident set (RSS) is read with psutil every 0.1 s.
The chat answers --requests piped requests (a greeting and the three checks in turn) with the real tools on
the demo database. The run inspects a folder of --images copies of the demo images with the shipped
detector (`inspector run --check people`); its RSS is taken as results.jsonl reaches 100, 250, 500 and 1000
items (those below --images, and --images itself; the last reading at or before each). The last of these
over the first says whether it stays flat.
"""

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import guarded, image_folder, machine, parser, save, show

REQUESTS = ("你好", "查查在济南工地人数嘛", "检测在济南工地的安全帽佩戴情况啊", "请输出济南工地的设备检查结果")
CHECKPOINTS = (100, 250, 500, 1000)
POLL_SECONDS = 0.1
MIB = 2**20


def watch(command: list[str], stdin: str, work: Path, progress: Callable[[], int]) -> dict[str, Any]:
    """Run `command` fed `stdin`, reading its RSS until it ends: the peak, and the RSS each time `progress()`
    first reads a new value. Exit codes 0 and 1 (some items failed) are results; any other ends the script."""
    import psutil

    (work / "stdin.txt").write_text(stdin, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "COLUMNS": "160"}
    peak, by_progress = 0, {}
    started = time.perf_counter()
    with (work / "stdin.txt").open(encoding="utf-8") as source, (work / "output.txt").open("w") as output:
        process = subprocess.Popen(command, stdin=source, stdout=output, stderr=subprocess.STDOUT, env=env)
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                rss = watched.memory_info().rss
            except psutil.NoSuchProcess:  # it ended between the poll and the reading
                break
            peak = max(peak, rss)
            by_progress.setdefault(progress(), rss)
            time.sleep(POLL_SECONDS)
    if process.wait() not in (0, 1):
        tail = (work / "output.txt").read_text(encoding="utf-8").strip().splitlines()[-5:]
        raise SystemExit(f"{' '.join(command[:2])} exited with {process.returncode}:\n" + "\n".join(tail))
    return {"seconds": time.perf_counter() - started, "peak": peak, "by_progress": by_progress}


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def main() -> None:
    parser_ = parser(__doc__, "memory", model="language model folder")
    parser_.add_argument("--requests", type=int, default=8, help="requests piped into the chat")
    parser_.add_argument("--images", type=int, default=1000, help="images in the scripted run")
    parser_.add_argument("--site", default="济南工地", help="the site the run's images are said to show")
    arguments = parser_.parse_args()

    inspector = str(Path(sys.executable).with_name("inspector"))
    where = machine()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        requests = [REQUESTS[i % len(REQUESTS)] for i in range(arguments.requests)]
        chat = [inspector, "chat", "--model", str(arguments.model), "--audit", str(work / "chat.jsonl")]
        chat += ["--evidence", str(work / "evidence")]
        chatted = watch(chat, "\n".join([*requests, "/exit"]) + "\n", work, lambda: 0)
        folder = image_folder(work / "images", arguments.images)
        results = work / "run" / "results.jsonl"
        run = [inspector, "run", "--images", str(folder), "--site", arguments.site, "--out", str(results.parent)]
        run += ["--model", str(arguments.model), "--audit", str(work / "run.jsonl")]
        ran = watch(run, "", work, lambda: lines_in(results))

    counts = sorted(count for count in ran["by_progress"] if count > 0)
    marks = sorted({*(mark for mark in CHECKPOINTS if mark < arguments.images), arguments.images})
    at = {
        mark: ran["by_progress"][max(c for c in counts if c <= mark)] for mark in marks if counts and counts[0] <= mark
    }
    flatness = at[marks[-1]] / at[marks[0]] if len(at) == len(marks) else None
    rows = [
        (f"inspector chat, {arguments.requests} requests: peak RSS", f"{chatted['peak'] / MIB:.0f} MiB"),
        *((f"inspector run: RSS at {mark} items", f"{rss / MIB:.0f} MiB") for mark, rss in at.items()),
        (f"inspector run, {arguments.images} images: peak RSS", f"{ran['peak'] / MIB:.0f} MiB"),
        (f"RSS at {marks[-1]} / at {marks[0]} items", "–" if flatness is None else f"{flatness:.3f}"),
        ("inspector run: seconds per item", f"{ran['seconds'] / arguments.images:.2f}"),
    ]
    show(f"memory: {arguments.model}", ("what", "value"), rows)
    report = {
        "machine": where,
        "model": str(arguments.model),
        "chat": {"requests": requests, "peak_rss_mib": chatted["peak"] / MIB, "seconds": chatted["seconds"]},
        "run": {
            "images": arguments.images,
            "seconds": ran["seconds"],
            "peak_rss_mib": ran["peak"] / MIB,
            "rss_mib_at_items": {mark: rss / MIB for mark, rss in at.items()},
            "rss_mib_by_items": {count: ran["by_progress"][count] / MIB for count in counts},
            "last_to_first": flatness,
        },
    }
    save(report, arguments.out)


if __name__ == "__main__":
    guarded(main)

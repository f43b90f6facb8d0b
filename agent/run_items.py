"""The items of a scripted inspection run: rows of a manifest (CSV or JSONL), or the images of a folder.

An item is one request to the agent. A row gives `site` and/or `image`, optionally `date` and `request`
(the words the inspector would say); without a request, the run says the check's request of
`prompts/agent.toml` [run.requests] about the site and date. Images are read relative to the manifest's
folder; an image without a date takes its capture date (a time stamp in the file name, else EXIF) as
`inspector db import images` reads it. A row that cannot be run is still an item, one that fails with the
row's problem, so one bad row never sinks the run. Each item has a stable key for resuming.
"""

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import UserError
from agent.reports import Check
from prompts import load

COLUMNS = ("site", "image", "date", "request")


@dataclass(frozen=True)
class Item:
    key: str
    where: str  # where it came from, for messages: `manifest.csv:3` or the image's path
    request: str = ""
    site: str | None = None
    image: str | None = None  # an absolute path
    date: str | None = None
    problem: str | None = None  # why the item cannot be run

    def fields(self) -> dict[str, str | None]:
        return {"site": self.site, "image": self.image, "date": self.date, "request": self.request}


def _key(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def capture_date(image: Path) -> str | None:
    """The day the photo was taken, if its file name or EXIF says; None for a file that does not."""
    from tools.imports import capture_time

    try:
        return capture_time(image).date().isoformat()
    except Exception:  # missing, broken or undated: no date here; the detector reports what is wrong with it
        return None


def make_item(where: str, check: Check, row: dict[str, str | None], folder: Path) -> Item:
    """The item a row stands for; `folder` is where relative image paths start."""
    site, image, date, request = (row.get(column) for column in COLUMNS)
    path = (folder / image).resolve() if image else None
    image, date = (str(path), date or capture_date(path)) if path else (None, date)
    if not request and not site:
        return Item(_key(where, row), where, image=image, date=date, problem="names no site; give a site or a request")
    request = request or load("agent")["run"]["requests"][check].format(site=site, date=date or "")
    return Item(_key(site, image, date, request), where, request, site, image, date)


def folder_items(folder: Path, site: str, check: Check) -> list[Item]:
    """One item per image under `folder` (recursively, in a stable order), all about `site`."""
    from tools.images import in_folder

    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    found = [make_item(str(path), check, {"site": site, "image": path.name}, path.parent) for path in in_folder(folder)]
    if not found:
        raise UserError(f"{folder}: no images found")
    return found


def manifest_items(manifest: Path, check: Check) -> list[Item]:
    """The items of a `.csv` (header: some of site, image, date, request) or `.jsonl` manifest."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the manifest {manifest}: {err}") from None
    suffix = manifest.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(manifest, text)
    elif suffix == ".jsonl":
        rows = _jsonl_rows(manifest, text)
    else:
        raise UserError(f"{manifest}: a manifest is a .csv or .jsonl file")
    if not rows:
        raise UserError(f"{manifest}: no rows")
    unique: dict[str, Item] = {}  # a row given twice is one item
    for where, row in rows:
        item = make_item(where, check, row, manifest.parent) if isinstance(row, dict) else _bad(where, row)
        unique.setdefault(item.key, item)
    return list(unique.values())


def _bad(where: str, problem: str) -> Item:
    return Item(_key(where, problem), where, problem=problem)


def _csv_rows(manifest: Path, text: str) -> list[tuple[str, dict[str, str | None] | str]]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in COLUMNS]
    if unknown or not {"site", "image", "request"} & set(header):
        raise UserError(
            f"{manifest}: columns are {', '.join(COLUMNS)} (site, image or request at least)"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    rows: list[tuple[str, dict[str, str | None] | str]] = []
    for row in reader:
        where = f"{manifest.name}:{reader.line_num}"
        extra = None in row
        rows.append((where, "more values than columns" if extra else _cleaned(row)))
    return rows


def _cleaned(row: dict[str, Any]) -> dict[str, str | None]:
    """The row's values stripped; an empty value is no value."""
    return {name: (value or "").strip() or None for name, value in row.items()}


def _jsonl_rows(manifest: Path, text: str) -> list[tuple[str, dict[str, str | None] | str]]:
    rows: list[tuple[str, dict[str, str | None] | str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            rows.append((f"{manifest.name}:{number}", _json_row(line)))
    return rows


def _json_row(line: str) -> dict[str, str | None] | str:
    """The row of a JSONL line, or what is wrong with it."""
    try:
        row: Any = json.loads(line)
    except json.JSONDecodeError as err:
        return f"not JSON ({err.msg})"
    if not isinstance(row, dict):
        return "not a JSON object"
    unknown = [str(name) for name in row if name not in COLUMNS]
    if unknown:
        return f"unknown keys {', '.join(unknown)}; keys are {', '.join(COLUMNS)}"
    if any(value is not None and not isinstance(value, str) for value in row.values()):
        return "values must be strings"
    return _cleaned(row)

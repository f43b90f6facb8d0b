"""Importing sites, work orders and site images into the database, all or nothing.

Every entry (a CSV row, an image file) is checked first; if any is bad, `BadRows` lists each problem with
its line number or file, and nothing is written. A good import is written in one transaction.
"""

import csv
import datetime as dt
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PIL import Image

from agent.errors import UserError
from agent.reports import CHECKS
from tools import db, images
from tools.observations import Failure
from tools.sites import Site

T = TypeVar("T")
Row = dict[str, str]

LIST_SEPARATOR = re.compile(r"[、;；]")
SITE_COLUMNS = ("name", "region", "aliases")
WORK_ORDER_COLUMNS = ("site", "date", "check", "expected_workers", "leader", "equipment")
MANIFEST_COLUMNS = ("site", "captured_at", "path")
# A capture time in a file name: 20240503_083000, 2024-05-03T08-30-00, 2024-05-03 08.30.00, ...
_STAMP = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})[T_ -]?(\d{2})[-.:]?(\d{2})[-.:]?(\d{2})")
_EXIF_IFD, _EXIF_TAKEN, _EXIF_CHANGED = 0x8769, 36867, 306


class BadRows(UserError):
    """An import with bad entries; `problems` has one line per entry, the message says nothing was written."""

    def __init__(self, source: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} bad entr{'y' if len(problems) == 1 else 'ies'}, nothing imported")


class Bad(ValueError):
    """What is wrong with one entry."""


@dataclass(frozen=True)
class Imported:
    added: int
    skipped: int = 0  # entries the database already held


def _checked(source: Path, entries: Iterable[tuple[str, T]], parse: Callable[[T], object]) -> list:
    """Every entry parsed, or BadRows naming each entry that is not."""
    parsed, problems = [], []
    for where, entry in entries:
        try:
            parsed.append(parse(entry))
        except (Bad, Failure) as problem:
            problems.append(f"{where}: {problem}")
    if problems:
        raise BadRows(source, problems)
    return parsed


def _csv(source: Path, columns: tuple[str, ...]) -> list[tuple[str, Row]]:
    """("line N", row) for each non-blank row of a UTF-8 CSV file whose header is `columns`."""
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    try:
        lines = source.read_text(encoding="utf-8-sig").splitlines()
        reader = csv.reader(lines, strict=True)
        header = tuple(name.strip() for name in next(reader, []))
        if header != columns:
            found = ",".join(header) or "nothing"
            raise UserError(f"{source}: the header must be {','.join(columns)} (found {found})")
        rows = [(f"line {reader.line_num}", values) for values in reader if any(v.strip() for v in values)]
    except UnicodeDecodeError:
        raise UserError(f"{source}: not UTF-8 text; save it as “CSV UTF-8”") from None
    except csv.Error as error:
        raise UserError(f"{source}: not a valid CSV file ({error})") from None
    return [(where, _row(values, columns)) for where, values in rows]


def _row(values: list[str], columns: tuple[str, ...]) -> Row:
    if len(values) != len(columns):
        return {"": f"expected {len(columns)} columns, found {len(values)}"}
    return {column: value.strip() for column, value in zip(columns, values, strict=True)}


def _well_formed(row: Row) -> Row:
    if "" in row:
        raise Bad(row[""])
    return row


def _items(text: str) -> list[str]:
    return [item.strip() for item in LIST_SEPARATOR.split(text) if item.strip()]


def _by_name(sites: Iterable[Site]) -> dict[str, Site]:
    return {name: site for site in sites for name in site.names}


def _known_site(name: str, sites: dict[str, Site]) -> Site:
    if name not in sites:
        raise Bad(f"unknown site “{name}”; add it with `inspector db import sites`")
    return sites[name]


def import_sites(database: Path, source: Path) -> Imported:
    """Add the sites of a `name,region,aliases` CSV (aliases separated by 、 or ;).

    A name or alias may belong to one site only.
    """
    with db.writing(database) as connection:
        taken = set(_by_name(db.sites(connection)))

        def parse(row: Row) -> tuple[str, str, list[str]]:
            row = _well_formed(row)
            if not row["name"]:
                raise Bad("the name is empty")
            names = [row["name"], *_items(row["aliases"])]
            used = [name for name in names if name in taken] or [n for n in names if names.count(n) > 1]
            if used:
                raise Bad(f"name or alias used twice: {'、'.join(dict.fromkeys(used))}")
            taken.update(names)
            return row["name"], row["region"], names[1:]

        sites = _checked(source, _csv(source, SITE_COLUMNS), parse)
        for name, region, aliases in sites:
            site_id = connection.execute("INSERT INTO sites (name, region) VALUES (?, ?)", (name, region)).lastrowid
            connection.executemany(
                "INSERT INTO site_aliases (alias, site_id) VALUES (?, ?)", [(a, site_id) for a in aliases]
            )
    return Imported(len(sites))


def import_work_orders(database: Path, source: Path) -> Imported:
    """Add the orders of a `site,date,check,expected_workers,leader,equipment` CSV.

    `site` is a site's name or alias, `date` is YYYY-MM-DD, `check` one of 人数检测 / 安全检查 / 设备检查,
    `equipment` a list separated by 、 or ;. An order that exists (same site, date and check) is an error.
    """
    with db.writing(database) as connection:
        sites = _by_name(db.sites(connection))
        existing = set(connection.execute("SELECT site_id, date, task FROM work_orders"))

        def parse(row: Row) -> tuple[tuple[int, str, str, int, str | None], list[str]]:
            row = _well_formed(row)
            site = _known_site(row["site"], sites)
            try:
                date = dt.date.fromisoformat(row["date"]).isoformat()
            except ValueError:
                raise Bad(f"date “{row['date']}” is not YYYY-MM-DD") from None
            if row["check"] not in CHECKS:
                raise Bad(f"check “{row['check']}” is not one of {'、'.join(CHECKS)}")
            if not (row["expected_workers"].isascii() and row["expected_workers"].isdigit()):
                raise Bad(f"expected_workers “{row['expected_workers']}” is not a whole number")
            key = (site.id, date, row["check"])
            if key in existing:
                raise Bad(f"{site.name} already has a {row['check']} order on {date}")
            existing.add(key)
            return (*key, int(row["expected_workers"]), row["leader"] or None), _items(row["equipment"])

        orders = _checked(source, _csv(source, WORK_ORDER_COLUMNS), parse)
        for order, equipment in orders:
            order_id = connection.execute(
                "INSERT INTO work_orders (site_id, date, task, expected_workers, leader) VALUES (?, ?, ?, ?, ?)",
                order,
            ).lastrowid
            connection.executemany(
                "INSERT INTO work_order_equipment (work_order_id, position, item) VALUES (?, ?, ?)",
                [(order_id, position, item) for position, item in enumerate(equipment)],
            )
    return Imported(len(orders))


def capture_time(path: Path) -> dt.datetime:
    """When a photo was taken: a time stamp in its file name, else its EXIF date."""
    if (stamp := _STAMP.search(path.stem)) is not None:
        try:
            return dt.datetime(*map(int, stamp.groups()))
        except ValueError:
            pass
    with Image.open(path) as image:
        exif = image.getexif()
        taken = exif.get_ifd(_EXIF_IFD).get(_EXIF_TAKEN) or exif.get(_EXIF_CHANGED)
    try:
        return dt.datetime.strptime(str(taken).strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        raise Bad("no capture time: name the file like 20240503_083000.jpg, or import a manifest") from None


@dataclass(frozen=True)
class _Image:
    site: Site
    captured_at: dt.datetime
    path: Path  # resolved, inside the import's root


def _site_folder_image(root: Path, path: Path, sites: dict[str, Site]) -> _Image:
    relative = path.relative_to(root)
    if len(relative.parts) < 2:
        raise Bad("not inside a site folder")
    site = _known_site(relative.parts[0], sites)
    images.probe(path, relative)
    return _Image(site, capture_time(path), images.inside_roots(path, [root]))


def _manifest_image(root: Path, row: Row, sites: dict[str, Site]) -> _Image:
    row = _well_formed(row)
    site = _known_site(row["site"], sites)
    try:
        captured_at = dt.datetime.fromisoformat(row["captured_at"])
    except ValueError:
        raise Bad(f"captured_at “{row['captured_at']}” is not YYYY-MM-DD HH:MM[:SS]") from None
    path = images.inside_roots(root / row["path"], [root], row["path"])
    images.probe(path, row["path"])
    return _Image(site, captured_at, path)


def import_images(database: Path, source: Path) -> Imported:
    """Index site images: a folder with one sub-folder per site (named by the site's name or alias, capture
    times from file names or EXIF), or a `site,captured_at,path` manifest CSV (paths relative to it).

    Images stay where they are; their folder becomes one of the database's image roots. Images the
    index already holds are skipped.
    """
    if not source.exists():
        raise UserError(f"{source}: no such file or folder")
    root = (source if source.is_dir() else source.parent).resolve()
    with db.writing(database) as connection:
        sites = _by_name(db.sites(connection))
        if source.is_dir():
            files = [(path.relative_to(root).as_posix(), path) for path in images.in_folder(root)]
            found = _checked(source, files, lambda path: _site_folder_image(root, path, sites))
        else:
            rows = _csv(source, MANIFEST_COLUMNS)
            found = _checked(source, rows, lambda row: _manifest_image(root, row, sites))
        if not found:
            raise UserError(f"{source}: no images found (looked for {' '.join(images.SUFFIXES)} files)")
        folder = database.resolve().parent
        indexed = {path for (path,) in connection.execute("SELECT path FROM images")}
        rows = {
            (image.site.id, image.captured_at.isoformat(timespec="seconds"), _relative(image.path, folder))
            for image in found
        }
        new = sorted(row for row in rows if row[2] not in indexed)
        connection.executemany("INSERT INTO images (site_id, captured_at, path) VALUES (?, ?, ?)", new)
        connection.execute("INSERT OR IGNORE INTO image_roots (path) VALUES (?)", (_relative(root, folder),))
    return Imported(len(new), len(rows) - len(new))


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()

"""The work-order database: one SQLite file with sites, work orders and an index of site images.

The project owns the schema: `init` creates it or migrates an older file forward (PRAGMA user_version
counts the migrations applied). Foreign keys are on for every connection, every query is parameterised,
and the agent's connection is read-only. Image paths are stored relative to the database's folder.
"""

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError
from tools.sites import Site

MIGRATIONS = (
    """
    CREATE TABLE sites (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE CHECK (name <> ''),
        region TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE site_aliases (
        alias TEXT PRIMARY KEY CHECK (alias <> ''),
        site_id INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE
    );
    CREATE TABLE work_orders (
        id INTEGER PRIMARY KEY,
        site_id INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        date TEXT NOT NULL CHECK (date = strftime('%Y-%m-%d', date)),
        task TEXT NOT NULL CHECK (task IN ('人数检测', '安全检查', '设备检查')),
        expected_workers INTEGER NOT NULL CHECK (expected_workers >= 0),
        leader TEXT,
        UNIQUE (site_id, date, task)
    );
    CREATE TABLE work_order_equipment (
        work_order_id INTEGER NOT NULL REFERENCES work_orders (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        item TEXT NOT NULL CHECK (item <> ''),
        PRIMARY KEY (work_order_id, position)
    );
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        site_id INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        captured_at TEXT NOT NULL CHECK (captured_at = strftime('%Y-%m-%dT%H:%M:%S', captured_at)),
        path TEXT NOT NULL UNIQUE
    );
    CREATE INDEX images_by_site_and_time ON images (site_id, captured_at);
    CREATE TABLE image_roots (path TEXT PRIMARY KEY);
    """,
    # A snapshot (the demo, an export) says which day it describes: "today" for its questions.
    """
    CREATE TABLE snapshot (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        as_of TEXT NOT NULL CHECK (as_of = strftime('%Y-%m-%d', as_of))
    );
    """,
)
VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class WorkOrder:
    site: str
    date: dt.date
    check: str
    expected_workers: int
    leader: str | None
    equipment: tuple[str, ...]


@dataclass(frozen=True)
class SiteImage:
    path: str  # relative to the database's folder
    captured_at: dt.datetime


def _open(uri: str) -> sqlite3.Connection:
    connection = sqlite3.connect(uri, uri=True)
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def init(database: Path) -> int:
    """Create the database or migrate it to the current schema; returns the number of migrations applied."""
    database.parent.mkdir(parents=True, exist_ok=True)
    connection = _open(f"{database.resolve().as_uri()}?mode=rwc")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise ConfigError(f"{database} has schema version {version}, newer than this program's {VERSION}")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            connection.executescript(f"BEGIN; {script} PRAGMA user_version = {number}; COMMIT;")
        return VERSION - version
    finally:
        connection.close()


def _connect(database: Path, *, writable: bool) -> sqlite3.Connection:
    if not database.is_file():
        raise ConfigError(f"no work-order database at {database}: create one with `inspector db init`")
    connection = _open(f"{database.resolve().as_uri()}?mode={'rw' if writable else 'ro'}")
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version != VERSION:
        connection.close()
        raise ConfigError(f"{database} has schema version {version}, expected {VERSION}: run `inspector db init`")
    return connection


@contextmanager
def reading(database: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing database of the current schema: what the agent gets."""
    connection = _connect(database, writable=False)
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def writing(database: Path) -> Iterator[sqlite3.Connection]:
    """A connection whose changes are committed together when the block ends, or not at all."""
    connection = _connect(database, writable=True)
    try:
        with connection:
            yield connection
    finally:
        connection.close()


def as_of(connection: sqlite3.Connection) -> dt.date | None:
    """The day a snapshot database describes, or None for a live one."""
    row = connection.execute("SELECT as_of FROM snapshot").fetchone()
    return dt.date.fromisoformat(row[0]) if row else None


def set_as_of(connection: sqlite3.Connection, day: dt.date) -> None:
    connection.execute("INSERT OR REPLACE INTO snapshot (only_row, as_of) VALUES (1, ?)", (day.isoformat(),))


def sites(connection: sqlite3.Connection) -> list[Site]:
    aliases: dict[int, list[str]] = {}
    for alias, site_id in connection.execute("SELECT alias, site_id FROM site_aliases ORDER BY alias"):
        aliases.setdefault(site_id, []).append(alias)
    rows = connection.execute("SELECT id, name, region FROM sites ORDER BY name")
    return [Site(id, name, region, tuple(aliases.get(id, ()))) for id, name, region in rows]


def work_orders(connection: sqlite3.Connection, site: Site, date: dt.date | None = None) -> list[WorkOrder]:
    """The site's orders, on `date` or on every day, by date and task."""
    query = "SELECT id, date, task, expected_workers, leader FROM work_orders WHERE site_id = ?"
    parameters: list[object] = [site.id]
    if date is not None:
        query += " AND date = ?"
        parameters.append(date.isoformat())
    orders = []
    for order_id, day, task, expected, leader in connection.execute(f"{query} ORDER BY date, task", parameters):
        items = connection.execute(
            "SELECT item FROM work_order_equipment WHERE work_order_id = ? ORDER BY position", (order_id,)
        )
        equipment = tuple(item for (item,) in items)
        orders.append(WorkOrder(site.name, dt.date.fromisoformat(day), task, expected, leader, equipment))
    return orders


def latest_image(connection: sqlite3.Connection, site: Site, until: dt.datetime | None) -> SiteImage | None:
    """The site's last image captured before `until`, or its last image at all when `until` is None."""
    query = "SELECT path, captured_at FROM images WHERE site_id = ?"
    parameters: list[object] = [site.id]
    if until is not None:
        query += " AND captured_at < ?"
        parameters.append(until.isoformat(timespec="seconds"))
    row = connection.execute(f"{query} ORDER BY captured_at DESC, path DESC LIMIT 1", parameters).fetchone()
    return SiteImage(row[0], dt.datetime.fromisoformat(row[1])) if row else None


def image_roots(connection: sqlite3.Connection, database: Path) -> list[Path]:
    """The folders images may be read from: the database's own and those its imports registered."""
    folder = database.resolve().parent
    registered = [(folder / path).resolve() for (path,) in connection.execute("SELECT path FROM image_roots")]
    return [folder, *registered]


def counts(connection: sqlite3.Connection) -> dict[int, tuple[int, int]]:
    """Each site's number of work orders and of indexed images, by site id."""
    rows = connection.execute(
        "SELECT id, (SELECT count(*) FROM work_orders WHERE site_id = sites.id),"
        " (SELECT count(*) FROM images WHERE site_id = sites.id) FROM sites"
    )
    return {site_id: (orders, images) for site_id, orders, images in rows}

"""`inspector db …`: create the work-order database, import into it, look at what it holds."""

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tools import db, imports
from tools.context import DEMO_DATABASE
from tools.dates import resolve_date
from tools.sites import resolve_site

Database = Annotated[Path, typer.Option("--db", envvar="INSPECTOR_DB", help="The SQLite work-order database.")]
Source = Annotated[Path, typer.Argument(help="The file (or folder) to import.")]

database_app = typer.Typer(help="The work-order database: sites, work orders, site images.", no_args_is_help=True)
import_app = typer.Typer(help="Import into the database; an import with any bad entry writes nothing.")
database_app.add_typer(import_app, name="import", no_args_is_help=True)


@database_app.command()
def init(database: Database = DEMO_DATABASE) -> None:
    """Create the database, or bring an older one up to the current schema."""
    applied = db.init(database)
    Console(highlight=False).print(f"{database}: schema version {db.VERSION}, {applied} migration(s) applied")


Importer = Callable[[Path, Path], imports.Imported]


def _run_import(what: str, action: Importer, database: Path, source: Path) -> None:
    try:
        imported = action(database, source)
    except imports.BadRows as bad:
        errors = Console(stderr=True, highlight=False, soft_wrap=True)
        for problem in bad.problems:
            errors.print(f"[red]{escape(problem)}[/]")
        raise
    skipped = f" ({imported.skipped} already there)" if imported.skipped else ""
    Console(highlight=False).print(f"{source}: {imported.added} {what} imported into {database}{skipped}")


@import_app.command("sites")
def import_sites(source: Source, database: Database = DEMO_DATABASE) -> None:
    """Sites from a CSV with the header name,region,aliases (aliases separated by 、 or ;)."""
    _run_import("sites", imports.import_sites, database, source)


@import_app.command("work-orders")
def import_work_orders(source: Source, database: Database = DEMO_DATABASE) -> None:
    """Work orders from a CSV with the header site,date,check,expected_workers,leader,equipment."""
    _run_import("work orders", imports.import_work_orders, database, source)


@import_app.command("images")
def import_images(source: Source, database: Database = DEMO_DATABASE) -> None:
    """Site images: a folder with a sub-folder per site, or a CSV manifest site,captured_at,path."""
    _run_import("images", imports.import_images, database, source)


@database_app.command()
def sites(database: Database = DEMO_DATABASE) -> None:
    """The registered sites with their aliases and how many orders and images each has."""
    with db.reading(database) as connection:
        found, counts = db.sites(connection), db.counts(connection)
    table = Table("site", "aliases", "region", "orders", "images", title=f"{len(found)} sites in {database}")
    for site in found:
        orders, images = counts[site.id]
        table.add_row(site.name, "、".join(site.aliases), site.region, str(orders), str(images))
    Console().print(table)


@database_app.command()
def orders(
    site: Annotated[str, typer.Option(help="A site's name, alias or something close to it.")],
    date: Annotated[str | None, typer.Option(help="今天, 昨天, 5月3日, 2024-05-03, … (default: every day).")] = None,
    database: Database = DEMO_DATABASE,
) -> None:
    """A site's work orders, on one day or on every day."""
    day = resolve_date(date, dt.date.today()) if date is not None else None
    with db.reading(database) as connection:
        found = resolve_site(site, db.sites(connection))
        listed = db.work_orders(connection, found, day)
    title = f"{found.name}: {len(listed)} work order(s)" + (f" on {day}" if day else "")
    table = Table("date", "check", "expected workers", "leader", "equipment", title=title)
    for order in listed:
        equipment = "、".join(order.equipment)
        table.add_row(str(order.date), order.check, str(order.expected_workers), order.leader or "", equipment)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(database_app, name="db")

"""The action library's commands: `inspector db …`, `inspector detect`, `inspector train-detector`."""

import typer

from tools import db_cli


def register(app: typer.Typer) -> None:
    db_cli.register(app)

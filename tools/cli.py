"""The action library's commands: `inspector db …`, `inspector detect`, `inspector train-detector`."""

import typer

from tools import db_cli, detect_cli


def register(app: typer.Typer) -> None:
    db_cli.register(app)
    app.command()(detect_cli.detect)
    app.command("train-detector")(detect_cli.train_detector)

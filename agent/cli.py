"""The `inspector` command: one typer app; each area of the project registers its own subcommands.

Subcommand modules import heavy libraries (torch, transformers, ultralytics) inside the commands,
so `inspector --help` stays fast.
"""

import typer
from rich.console import Console

from agent import chat_cli, data_cli, eval_cli, model_cli, run_cli, train_cli
from agent.errors import InspectorError
from tools import cli as tools_cli

app = typer.Typer(
    name="inspector",
    help="grid-inspector: a tool-calling agent for power-grid construction-site inspections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for register in (
    data_cli.register,
    model_cli.register,
    train_cli.register,
    eval_cli.register,
    chat_cli.register,
    run_cli.register,
    tools_cli.register,
):
    register(app)


def main() -> None:
    """Console-script entry point: a project error is one red line and exit code 2, never a traceback."""
    try:
        app()
    except InspectorError as err:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {err}", highlight=False)
        raise SystemExit(2) from None

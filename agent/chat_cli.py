"""`inspector chat`: the interactive terminal chat on the shipped defaults or explicit paths."""

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from agent.errors import UserError
from agent.session import DEFAULT_MODEL
from tools.context import DEFAULT_DETECTOR, DEMO_DATABASE

ModelOption = Annotated[Path, typer.Option(help="Model folder (native GLM with tokenizer.model).")]
PrefixOption = Annotated[Path | None, typer.Option(help="A P-tuning v2 adapter folder for the model.")]
DatabaseOption = Annotated[Path, typer.Option("--db", help="Work-order database (SQLite).")]
DetectorOption = Annotated[Path, typer.Option(help="Detector configuration (TOML).")]
AuditOption = Annotated[Path | None, typer.Option(help="Audit log (JSONL); default runs/audit/<kind>-<time>.jsonl.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
TodayOption = Annotated[
    str | None, typer.Option(help="The day 今天 means (YYYY-MM-DD); default: the database's snapshot date, else today.")
]


def parse_today(today: str | None) -> dt.date | None:
    if today is None:
        return None
    try:
        return dt.date.fromisoformat(today)
    except ValueError:
        raise UserError(f"--today must be a date like 2024-05-31, not {today!r}") from None


def chat(
    model: ModelOption = DEFAULT_MODEL,
    prefix: PrefixOption = None,
    db: DatabaseOption = DEMO_DATABASE,
    detector: DetectorOption = DEFAULT_DETECTOR,
    audit: AuditOption = None,
    evidence: Annotated[Path, typer.Option(help="Folder for evidence images (boxes drawn).")] = Path("runs/evidence"),
    device: DeviceOption = "auto",
    today: TodayOption = None,
) -> None:
    """Chat with the inspector agent; piped standard input works too (one request per line)."""
    import sys

    from rich.console import Console

    from agent.audit import AuditLog, default_path
    from agent.chat import Chat, input_lines
    from agent.session import SessionOptions, open_agent, today_for

    console = Console()
    session = Chat(console, AuditLog(audit or default_path("chat")), evidence)
    options = SessionOptions(
        model=model,
        prefix=prefix,
        database=db,
        detector=detector,
        evidence_dir=evidence,
        device=device,
        today=parse_today(today),
    )
    with console.status("加载模型与工具…"):
        agent = open_agent(options, observer=session.observe)
    day, source = today_for(options)
    console.print(f"今天 = {day.isoformat()} ({source})", style="dim")
    interactive = sys.stdin.isatty()
    session.run(agent, input_lines(console, sys.stdin, interactive), echo=not interactive)
    console.print(f"audit log: {session.audit.path}", style="dim")


def register(app: typer.Typer) -> None:
    app.command()(chat)

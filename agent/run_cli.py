"""`inspector run` (scripted inspection runs) and `inspector replay` (canned-dialogue regression tests)."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agent.chat_cli import (
    AuditOption,
    DatabaseOption,
    DetectorOption,
    DeviceOption,
    ModelOption,
    PrefixOption,
    TodayOption,
    parse_today,
)
from agent.errors import UserError
from agent.reports import Check
from agent.session import DEFAULT_MODEL
from tools.context import DEFAULT_DETECTOR, DEMO_DATABASE


class CheckName(StrEnum):
    people = "people"
    helmets = "helmets"
    equipment = "equipment"


CHECK_OF: dict[CheckName, Check] = {
    CheckName.people: "人数检测",
    CheckName.helmets: "安全检查",
    CheckName.equipment: "设备检查",
}


def run(
    out: Annotated[Path, typer.Option(help="Folder for results.jsonl, report.md, run.json and evidence images.")],
    manifest: Annotated[
        Path | None, typer.Option(help="Items as CSV or JSONL with site, image, date, request (some of them).")
    ] = None,
    images: Annotated[Path | None, typer.Option(help="A folder of images, each one item about --site.")] = None,
    site: Annotated[str | None, typer.Option(help="The site the --images show.")] = None,
    check: Annotated[CheckName, typer.Option(help="The check of items without their own request.")] = CheckName.people,
    model: ModelOption = DEFAULT_MODEL,
    prefix: PrefixOption = None,
    db: DatabaseOption = DEMO_DATABASE,
    detector: DetectorOption = DEFAULT_DETECTOR,
    audit: AuditOption = None,
    device: DeviceOption = "auto",
    today: TodayOption = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Items inspected together, their model calls batched (results per item).")
    ] = 16,
) -> None:
    """Inspect every item with the full agent; running it again resumes: done items skipped, failed retried."""
    import datetime as dt
    from dataclasses import replace

    from rich.console import Console

    from agent.audit import AuditLog, default_path
    from agent.inspection_run import REPORT_FILE, RESULTS_FILE, Run, RunConfig, catalog_tools, image_roots
    from agent.run_items import folder_items, manifest_items
    from agent.run_report import markdown
    from agent.run_results import Results
    from agent.session import SessionOptions, open_agent
    from tools.context import ToolContext

    if manifest is not None and images is None and site is None:
        items = manifest_items(manifest, CHECK_OF[check])
    elif manifest is None and images is not None and site is not None:
        items = folder_items(images, site, CHECK_OF[check])
    else:
        raise UserError("give either --manifest FILE, or --images DIR with --site SITE")
    out.mkdir(parents=True, exist_ok=True)
    console = Console(markup=False, highlight=False)
    results = Results(out / RESULTS_FILE)
    options = SessionOptions(
        model, prefix, db, detector, image_roots=image_roots(items), device=device, today=parse_today(today)
    )
    config = RunConfig.of(options, RunConfig.load(out) if results.records else None)
    if results.repaired:
        console.print(f"dropped a truncated last line of {results.path} (the previous run was killed mid-write)")
    done = results.done()
    todo = [item for item in items if item.key not in done]
    console.print(f"{len(items)} items: {len(items) - len(todo)} done, {len(todo)} to run; today is {config.today}")
    if todo:
        with console.status("加载模型与工具…"):
            agent = open_agent(replace(options, today=dt.date.fromisoformat(config.today)))
        config.save(out)
        log = AuditLog(audit or default_path("run"))
        context = agent.registry.context  # the session's: its database, detector, image roots and today
        assert isinstance(context, ToolContext)
        Run(agent, results, catalog_tools(context), log, batch_size).run(todo, console)
        console.print(f"audit log: {log.path}", style="dim")
    latest = results.latest()
    records = [latest[item.key] for item in items]
    (out / REPORT_FILE).write_text(markdown(records), encoding="utf-8")
    failed = sum(record["status"] == "failed" for record in records)
    console.print(f"{len(records) - failed} ok, {failed} failed; wrote {results.path} and {out / REPORT_FILE}")
    if failed:
        raise typer.Exit(1)


def replay(
    files: Annotated[list[Path], typer.Argument(help="Dialogues in ChatGLM3's fine-tuning format (JSONL).")],
    live: Annotated[bool, typer.Option("--live", help="Run the real tools instead of the recorded ones.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Also write the results as JUnit XML.")] = None,
    model: ModelOption = DEFAULT_MODEL,
    prefix: PrefixOption = None,
    db: DatabaseOption = DEMO_DATABASE,
    detector: DetectorOption = DEFAULT_DETECTOR,
    device: DeviceOption = "auto",
    today: TodayOption = None,
) -> None:
    """Replay canned dialogues and compare the agent's tool calls and replies with the recorded ones."""
    from rich.console import Console
    from rich.text import Text

    from agent import replay as rp
    from agent.session import SessionOptions, open_agent

    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise UserError(f"no such file: {', '.join(missing)}")
    console = Console(highlight=False)
    options = SessionOptions(model, prefix, db, detector, device=device, today=parse_today(today))
    with console.status("加载模型与工具…"):
        replayer = rp.Replayer(open_agent(options), live=live)
    results = []
    for path in files:
        with console.status(f"replaying {path}"):
            results.append(replayer.file(path))
    for result in (dialogue for f in results for dialogue in f.failed):
        console.print(Text.assemble(("FAILED", "bold red"), f" {result.name}"))
        console.print(result.diff, markup=False, highlight=False)
    console.print(rp.summary(results))
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        rp.junit(results).write(junit, encoding="utf-8", xml_declaration=True)
        console.print(f"wrote {junit}", markup=False)
    if any(f.failed for f in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(replay)

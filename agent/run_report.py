"""The Markdown report of an inspection run: a table per site, the anomalies found, the failed items."""

from collections import Counter
from pathlib import Path
from urllib.parse import quote

from agent.run_results import Record

# Outcomes (prompts/reports.toml) that need nobody's attention; every other outcome is an anomaly:
# 有人缺勤, 非法进入, 安全隐患, 未携带设备, 需人工复核.
NORMAL = frozenset({"people_normal", "helmets_all", "helmets_empty", "equipment_all", "equipment_empty"})


def is_anomaly(record: Record) -> bool:
    return record["status"] == "ok" and record["outcome"] not in NORMAL


def site_of(record: Record) -> str:
    """The site as the work order names it, else as the item names it."""
    return record["inspected"].get("site") or record["site"] or "—"


def _cell(value: object) -> str:
    return str(value if value not in (None, "") else "—").replace("|", "\\|").replace("\n", " ")


def _row(*cells: object) -> str:
    return "| " + " | ".join(map(_cell, cells)) + " |"


def markdown(records: list[Record]) -> str:
    """The report over the run's items (each item's latest record)."""
    failed = [r for r in records if r["status"] == "failed"]
    anomalies = [r for r in records if is_anomaly(r)]
    flagged = sum(1 for r in records if r["flagged"])
    lines = [
        "# Inspection run",
        "",
        f"{len(records)} items: {len(records) - len(failed)} ok, {len(failed)} failed; anomalies: {len(anomalies)}; "
        f"flagged (report corrected by the verifier): {flagged}.",
        "",
        "## By site",
        "",
        "| site | items | ok | failed | flagged | anomalies |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    sites = Counter(site_of(r) for r in records)
    for site in sorted(sites):
        mine = [r for r in records if site_of(r) == site]
        ok = sum(1 for r in mine if r["status"] == "ok")
        flags = sum(1 for r in mine if r["flagged"])
        lines.append(_row(site, len(mine), ok, len(mine) - ok, flags, sum(map(is_anomaly, mine))))
    lines += ["", "## Anomalies", ""]
    if anomalies:
        lines += ["| site | date | image | report | evidence |", "|---|---|---|---|---|"]
        for r in anomalies:
            image = r["inspected"].get("image")
            evidence = " ".join(f"[{Path(path).name}]({quote(path)})" for path in r["evidence"])
            lines.append(_row(site_of(r), r["inspected"].get("date"), image and Path(image).name, r["reply"], evidence))
    else:
        lines.append("None.")
    lines += ["", "## Failed items", ""]
    if failed:
        lines += ["| item | request | error |", "|---|---|---|"]
        lines += [_row(r["where"], r["request"], r["error"]) for r in failed]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"

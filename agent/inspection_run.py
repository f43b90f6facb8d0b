"""The scripted inspection run: every item through the full agent, each result appended to `results.jsonl`.

An item is run as one fresh turn (empty memory) with its own tools: the catalog's tools on the run's
database and detector, writing evidence images to `evidence/<key>/` in the run's folder. The tools are
bound to what the item states: when it names an image, count_people / check_helmets / check_equipment
answer about that image whatever site or date the model passes; when it names a site or a date, the work
order (and detection without an image) is looked up for that site and date. The model chooses the check
and writes the report; the call is recorded as the model made it, the observation says what was looked up.
Only an item that is a bare request (a manifest row with a request and no site) is looked up as the model
read it.

An item fails when it cannot be run, when its turn ends without a report (failed, rejected, or a greeting
or question back), when a tool answers with an error (an unreadable image, an unknown site), or when
anything raises; the failure is recorded and the run goes on. Re-running skips the items whose latest
record is ok and retries the others.
"""

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from textwrap import shorten
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from agent.audit import AuditLog
from agent.errors import ConfigError
from agent.lockstep import run_together
from agent.reports import DETECTOR_FOR, error_of, outcome
from agent.run_items import Item
from agent.run_results import Record, Results
from agent.session import SessionOptions, today_for
from agent.state_machine import CHECK_OF_DETECTOR, WORK_ORDER, Agent, State, Turn
from tools.catalog import TOOLS
from tools.context import ToolContext
from tools.observations import Observation
from tools.registry import Registry

CONFIG_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
REPORT_FILE = "report.md"
EVIDENCE_DIR = "evidence"
ToolsFor = Callable[[Item, Path], Registry]  # an item's tools, given its evidence folder


@dataclass(frozen=True)
class RunConfig:
    """What decides an item's answer, saved as run.json: a run resumes only with the same paths and today
    (the day requests without a date are about)."""

    model: str
    prefix: str | None
    database: str
    detector: str
    today: str

    @classmethod
    def of(cls, options: SessionOptions, saved: "RunConfig | None") -> "RunConfig":
        """The run's configuration: paths resolved; today the option's, else the saved run's, else the session's.

        Raises ConfigError when `saved` (the run being resumed) was made otherwise."""
        today = options.today or (dt.date.fromisoformat(saved.today) if saved else today_for(options)[0])
        prefix = str(options.prefix.resolve()) if options.prefix else None
        paths = (str(options.model.resolve()), prefix, str(options.database.resolve()), str(options.detector.resolve()))
        config = cls(*paths, today.isoformat())
        if saved is not None and saved != config:
            changed = ", ".join(
                f"{f.name} {getattr(saved, f.name)}"
                for f in fields(cls)
                if getattr(saved, f.name) != getattr(config, f.name)
            )
            raise ConfigError(
                f"the run in this --out folder was made with {changed}; use the same options or another --out"
            )
        return config

    def save(self, out: Path) -> None:
        (out / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, out: Path) -> "RunConfig | None":
        path = out / CONFIG_FILE
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{f.name: saved[f.name] for f in fields(cls)})
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            raise ConfigError(f"{path} is not a run configuration ({err}); remove it or use another --out") from None


class ItemTools(Registry):
    """The catalog's tools for one item, bound to the item's image, site and date where it states them."""

    def __init__(
        self, context: ToolContext, image: str | None, site: str | None = None, date: str | None = None
    ) -> None:
        super().__init__(context)
        self.image = image
        self.facts = {name: value for name, value in (("site", site), ("date", date)) if value}
        for tool in TOOLS:
            self.add(tool)

    def call(self, name: str, arguments: object) -> Observation:
        if self.image is not None and name in CHECK_OF_DETECTOR:
            arguments = {"image": self.image}
        elif isinstance(arguments, dict) and (name == WORK_ORDER or name in CHECK_OF_DETECTOR):
            arguments = {**arguments, **self.facts}
        return super().call(name, arguments)


def catalog_tools(context: ToolContext) -> ToolsFor:
    """Each item's tools: the catalog's on `context`, with the item's evidence folder, image, site and date."""
    return lambda item, evidence: ItemTools(replace(context, evidence_dir=evidence), item.image, item.site, item.date)


def image_roots(items: list[Item]) -> tuple[Path, ...]:
    """The folders of the items' images: the run may read them (the operator named them)."""
    return tuple(sorted({Path(item.image).parent for item in items if item.image}))


def failure(turn: Turn) -> str | None:
    """Why a finished turn is not an inspection result, or None."""
    for run in turn.tools:
        if (error := error_of(run.observation)) is not None:
            return f"{run.name}: {error}"
    if turn.state is State.DONE:
        return None
    if turn.state in (State.GREET, State.ASK_BACK):
        return f"no inspection; the agent replied: {turn.reply}"
    return turn.reply


def findings(turn: Turn) -> dict[str, Any]:
    """The check, its outcome and what was inspected (site, date, image), as the observations say."""
    work_order = next((run for run in reversed(turn.tools) if run.name == WORK_ORDER), None)
    if work_order is None:
        return {"check": None, "outcome": None, "inspected": {}}
    check = work_order.arguments["check"]
    detection = next((run for run in reversed(turn.tools) if run.name == DETECTOR_FOR[check]), None)
    order, detected = work_order.observation, detection.observation if detection else None
    answered = detected is not None and error_of(order) is None and error_of(detected) is None
    inspected = {"site": order.get("site"), "date": order.get("date"), "image": (detected or {}).get("image")}
    return {"check": check, "outcome": outcome(check, order, detected) if answered else None, "inspected": inspected}


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} items/s" if task.speed else "– items/s", style="progress.data.speed")


class Run:
    """Runs items through the agent, `batch_size` at a time, appending each result to the run's results.jsonl.

    The items of a batch are inspected in lockstep (agent.lockstep): each has its own agent, tools, memory
    and evidence folder; their model calls go to the model together. A batch's records are appended in item
    order once the batch is done, so a run killed mid-batch re-runs that batch's items and no others.
    """

    def __init__(
        self, agent: Agent, results: Results, tools_for: ToolsFor, audit: AuditLog | None, batch_size: int = 16
    ) -> None:
        self.agent, self.results, self.tools_for, self.audit = agent, results, tools_for, audit
        self.batch_size = batch_size
        self.out = results.path.parent

    def inspect(self, items: list[Item]) -> list[Record]:
        """The items' records, in order; an item's own failures are recorded, never raised.

        An item's `seconds` is its share of the batch's time (the batch's wall time over its items)."""
        started = time.perf_counter()
        runnable = [item for item in items if item.problem is None]
        steps = []
        for item in runnable:
            evidence = self._evidence(item)
            shutil.rmtree(evidence, ignore_errors=True)
            steps.append(self.agent.fork(self.tools_for(item, evidence)).steps(item.request))
        turns = run_together(self.agent.backend, steps, self.agent.max_new_tokens)
        ended = {item.key: turn for item, turn in zip(runnable, turns, strict=True)}
        share = round((time.perf_counter() - started) / max(len(items), 1), 3)
        return [self._record(item, ended.get(item.key), share) for item in items]

    def _evidence(self, item: Item) -> Path:
        return self.out / EVIDENCE_DIR / item.key

    def _record(self, item: Item, ended: Turn | Exception | None, seconds: float) -> Record:
        done: Record = {"state": None, "reply": "", "flagged": False, "check": None, "outcome": None}
        done |= {"inspected": {}, "tools": [], "evidence": []}
        error = item.problem
        if isinstance(ended, Exception):
            error = f"{type(ended).__name__}: {ended}"
        elif ended is not None:
            if self.audit is not None:
                self.audit.write(ended, item=item.key)
            error, done = failure(ended), self._done(ended, self._evidence(item))
        return {
            "key": item.key,
            "where": item.where,
            **item.fields(),
            "status": "failed" if error else "ok",
            "error": error,
            **done,
            "seconds": seconds,
            "time": dt.datetime.now().isoformat(timespec="seconds"),
        }

    def _done(self, turn: Turn, evidence: Path) -> Record:
        files = sorted(path for path in evidence.rglob("*") if path.is_file()) if evidence.is_dir() else []
        return {
            "state": turn.state.value,
            "reply": turn.reply,
            "flagged": turn.flagged,
            **findings(turn),
            "tools": [asdict(run) for run in turn.tools],
            "evidence": [path.relative_to(self.out).as_posix() for path in files],
        }

    def run(self, items: list[Item], console: Console) -> None:
        """Inspect `items` in order, a batch at a time, a progress bar; a failed item is reported, the run goes on."""
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate())
        failed = 0
        with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("inspecting", total=len(items))
            for first in range(0, len(items), self.batch_size):
                batch = items[first : first + self.batch_size]
                for item, record in zip(batch, self.inspect(batch), strict=True):
                    self.results.append(record)
                    if record["status"] == "failed":
                        failed += 1
                        error = shorten(record["error"], 160, placeholder=" …")
                        progress.console.print(Text.assemble(("failed", "yellow"), f" {item.where}: {error}"))
                progress.update(task, advance=len(batch), description=f"inspecting · {failed} failed")

"""Agent latency on this machine: each model step and each inspection turn, p50 / p95, the detector apart.

    .venv/bin/python bench/agent_latency.py --requests 200

The model answers the requests of `test_unseen` (sites the demo database does not hold) turn by turn, each
dialogue with its own memory, as `inspector replay` does: the tools answer with the observations recorded in
the dialogue, so a step's time is the model's. A call is answered by the recording of its tool even where
the model's arguments differ from the recorded ones (a misheard site, say), so that every inspection runs
its whole course; such calls are counted. The real tools are timed apart on the demo database and its
images: the work-order query (SQLite) and the detection tools, writing evidence images (the shipped detector
has no equipment class, so check_equipment answers at once that it cannot check). A full inspection turn
is a replayed turn with each recorded tool call replaced by a measured run of the real tool, the measured
runs of each tool taken in turn.
"""

import tempfile
from collections import Counter
from pathlib import Path

from common import guarded, machine, parser, percentiles, save, show, split_file

from agent.replay import RecordedCall, RecordedTools, recorded_turns
from agent.session import SessionOptions, open_agent, today_for
from agent.state_machine import Agent, State, Turn
from tools.context import DEFAULT_DETECTOR, DEMO_DATABASE

DETECTION_TOOLS = ("count_people", "check_helmets", "check_equipment")


class RecordedByTool(RecordedTools):
    """The recorded observations, each served to the next valid call of its tool whatever its arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.differing = 0  # calls answered although their arguments differ from the recorded ones

    def recorded_for(self, name: str, arguments: object) -> RecordedCall | None:
        recorded = next((call for call in self.pending if call.name == name), None)
        if recorded is not None and recorded.arguments != arguments:
            self.differing += 1
        return recorded


def replayed_turns(agent: Agent, tools: RecordedTools, dialogues_file: Path, requests: int) -> list[Turn]:
    """The agent's turns on the first `requests` user requests of the file, on their recorded observations."""
    from agent.chatglm_format import read_dialogues

    agent.registry = tools
    agent.turn("你好")  # warm-up outside the measurement
    turns: list[Turn] = []
    for dialogue in read_dialogues(dialogues_file):
        agent.memory.reset()
        for recorded in recorded_turns(dialogue):
            if len(turns) == requests:
                return turns
            tools.pending = list(recorded.calls)
            turns.append(agent.turn(recorded.user))
    return turns


def step_name(turn: Turn, index: int, state: str) -> str:
    """greet or ask_back for a turn's only reply to the request, else the agent's state: parse or summarize."""
    if index == 0 and turn.state in (State.GREET, State.ASK_BACK):
        return turn.state.value
    return state


def real_tool_seconds(options: SessionOptions, sites: int, evidence: Path) -> dict[str, list[float]]:
    """Seconds of each real tool, once per demo site with an image (at most `sites`), after one warm-up call."""
    import time

    from tools import db
    from tools.catalog import build_registry
    from tools.context import ToolContext

    day, _ = today_for(options)
    registry = build_registry(ToolContext(options.database, options.detector, evidence_dir=evidence, today=lambda: day))
    with db.reading(options.database) as connection:
        names = [site.name for site in db.sites(connection) if db.latest_image(connection, site, None) is not None]
    calls = [("query_work_order", {"check": "人数检测"}), *((tool, {}) for tool in DETECTION_TOOLS)]
    seconds: dict[str, list[float]] = {name: [] for name, _ in calls}
    for site in names[: sites + 1]:
        for name, arguments in calls:
            started = time.perf_counter()
            registry.call(name, {"site": site, **arguments})
            seconds[name].append(time.perf_counter() - started)
    return {name: timings[1:] for name, timings in seconds.items()}


def full_turn_seconds(turns: list[Turn], real: dict[str, list[float]]) -> list[float]:
    """Each inspection turn's seconds with its recorded tool calls replaced by measured real ones."""
    used: Counter[str] = Counter()
    totals = []
    for turn in turns:
        if turn.state is not State.DONE:
            continue
        seconds = turn.seconds
        for run in turn.tools:
            measured = real.get(run.name) or [run.seconds]
            seconds += measured[used[run.name] % len(measured)] - run.seconds
            used[run.name] += 1
        totals.append(seconds)
    return totals


def latency_rows(turns: list[Turn], real: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """p50 / p95 of each model step, of inspection turns (recorded and real tools), and of each real tool."""
    steps: dict[str, list[float]] = {}
    for turn in turns:
        for index, step in enumerate(turn.steps):
            steps.setdefault(step_name(turn, index, step.state), []).append(step.seconds)
    inspections = [turn.seconds for turn in turns if turn.state is State.DONE]
    rows = {f"step {name}": percentiles(seconds) for name, seconds in sorted(steps.items())}
    rows["inspection turn on recorded observations"] = percentiles(inspections)
    rows |= {f"tool {name}": percentiles(seconds) for name, seconds in real.items()}
    rows["full inspection turn (model + real tools)"] = percentiles(full_turn_seconds(turns, real))
    return rows


def main() -> None:
    parser_ = parser(
        __doc__, "agent_latency", model="model folder", data="folder with test_unseen.jsonl (made if missing)"
    )
    parser_.add_argument("--requests", type=int, default=200, help="user requests to time")
    parser_.add_argument("--sites", type=int, default=45, help="demo sites to time the real tools on")
    parser_.add_argument("--db", type=Path, default=DEMO_DATABASE, help="database for the real tools")
    parser_.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="detector configuration")
    arguments = parser_.parse_args()

    dialogues = split_file(arguments.data, "test_unseen")
    where = machine()
    options = SessionOptions(model=arguments.model, database=arguments.db, detector=arguments.detector)
    tools = RecordedByTool()
    turns = replayed_turns(open_agent(options), tools, dialogues, arguments.requests)
    with tempfile.TemporaryDirectory() as evidence:
        real = real_tool_seconds(options, arguments.sites, Path(evidence))

    rows = latency_rows(turns, real)
    outcomes = dict(Counter(turn.state.value for turn in turns))

    show(
        f"agent latency: {arguments.model} on {len(turns)} requests of {dialogues}",
        ("what", "n", "p50 ms", "p95 ms"),
        [(name, row["n"], row.get("p50_ms", "–"), row.get("p95_ms", "–")) for name, row in rows.items()],
        note=f"turn outcomes: {outcomes}; {tools.differing} calls differed from the recording; tools timed on "
        f"{arguments.db.name}",
    )
    report = {
        "machine": where,
        "model": str(arguments.model),
        "requests_file": str(dialogues),
        "requests": len(turns),
        "outcomes": outcomes,
        "calls_differing_from_recording": tools.differing,
        "latency": rows,
    }
    save(report, arguments.out)


if __name__ == "__main__":
    guarded(main)

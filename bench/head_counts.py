"""The head-count verdict: which pairs of numbers (应到 / 实到) does the model compare wrongly?

    .venv/bin/python bench/head_counts.py                  # the shipped default, dev, test_seen, test_unseen
    .venv/bin/python bench/head_counts.py --model DIR --splits dev

Every head-count report with an order (expected workers > 0) of the splits is written by the model, teacher-forced
and constrained as `inspector eval` does, and counted wrong unless exact. The pairs are grouped by what decides
the verdict: two numbers of one decade (10–19 … 50–59: only the units digit decides), two one-digit numbers, or
numbers of different decades (the tens digit or the length decides); and by the verdict they should get (normal:
equal; absent: fewer; excess: more).
The wrong reports are counted by the verdict they wrote (`agent.reports.report_outcome`).
"""

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from common import guarded, machine, parser, save, show, split_file

KINDS = ("one decade", "one digit", "other decades")
COMPARISONS = ("normal", "absent", "excess")


def kind(expected: int, persons: int) -> str:
    """What decides the verdict of a pair: `KINDS`."""
    if expected < 10 and persons < 10:
        return "one digit"
    return "one decade" if expected // 10 == persons // 10 else "other decades"


def comparison(expected: int, persons: int) -> str:
    """The verdict the pair should get (`agent.reports.outcome`): normal, absent or excess."""
    from agent.reports import outcome

    return outcome("人数检测", {"expected_workers": expected}, {"persons": persons}).removeprefix("people_")


def score(model: Path, data: Path, splits: list[str]) -> list[dict[str, Any]]:
    """One row per split, kind and comparison: items and wrong reports."""
    from agent import evaluate
    from agent.call_constraint import CallConstraint
    from agent.glm_backend import GLMBackend
    from agent.loading import LoadOptions
    from agent.prompting import Prompting
    from agent.reports import report_numbers, report_outcome
    from tools.catalog import derived_tools

    tools_in_system = Prompting.of(model).tools_in_system
    backend = GLMBackend.load(model, LoadOptions(device="cpu"), CallConstraint.of(derived_tools()))
    rows = []
    for split in splits:
        items, pairs = [], []
        for item in evaluate.items_of(split_file(data, split), tools_in_system):
            numbers = report_numbers(str(item.gold)) if item.step == "summarize" else {}
            if numbers.get("expected", 0) > 0:
                items.append(item)
                pairs.append((numbers["expected"], numbers["persons"]))
        total, written = Counter[tuple[str, str]](), defaultdict[tuple[str, str], Counter[str]](Counter)
        for (expected, persons), scored in zip(pairs, evaluate.run(backend, items), strict=True):
            group = (kind(expected, persons), comparison(expected, persons))
            total[group] += 1
            if scored.verdict != "ok":
                written[group][report_outcome(scored.output) or "unreadable"] += 1
        rows += [
            {
                "split": split,
                "kind": k,
                "comparison": c,
                "items": total[k, c],
                "wrong": written[k, c].total(),
                "written": dict(written[k, c].most_common()),
            }
            for k in KINDS
            for c in COMPARISONS
            if total[k, c]
        ]
    return rows


def written_as(written: dict[str, int]) -> str:
    return ", ".join(f"{count} {name.removeprefix('people_')}" for name, count in written.items())


def main() -> None:
    parser_ = parser(__doc__, "head_counts", model="model folder", data="folder with the splits (made if missing)")
    parser_.add_argument("--splits", nargs="+", default=["dev", "test_seen", "test_unseen"], help="splits to score")
    arguments = parser_.parse_args()
    where = machine()
    rows = score(arguments.model, arguments.data, arguments.splits)
    show(
        f"head-count reports with an order, {arguments.model} (constrained)",
        ("split", "pair", "should be", "items", "wrong", "wrong ones written as"),
        [(r["split"], r["kind"], r["comparison"], r["items"], r["wrong"], written_as(r["written"])) for r in rows],
    )
    save({"machine": where, "model": str(arguments.model), "rows": rows}, arguments.out)


if __name__ == "__main__":
    guarded(main)

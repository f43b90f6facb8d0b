"""Tune a model's span bonus: exact calls and quoted arguments on a development split's parse items, per bonus.

    .venv/bin/python bench/span_bonus.py                          # the shipped default, its dev split
    .venv/bin/python bench/span_bonus.py --model DIR --bonus 0 0.5 1 1.5 2
    .venv/bin/python bench/span_bonus.py --split dev_unseen       # held-out phrasings and names

Constrained decoding scores each quoted span (a site, a date) of the inspector's words as the model's
log-probability plus the bonus per character (agent/glm_backend.py). Tuned on `dev` (ties broken on
`dev_unseen`), never on a test split;
the chosen value goes into the model's `prompting.json` (`span_bonus`; the default's recipe sets it).
"""

from pathlib import Path
from typing import Any

from common import guarded, machine, parser, percent, save, show, split_file

QUOTED = ("site", "date")
SPLITS = ("dev", "dev_unseen")  # development splits only: a test split never tunes decoding


def score(model: Path, data: Path, split: str, bonus: list[float], limit: int | None) -> list[dict[str, Any]]:
    from agent import evaluate
    from agent.call_constraint import CallConstraint
    from agent.glm_backend import GLMBackend
    from agent.loading import LoadOptions
    from agent.prompting import Prompting
    from tools.catalog import derived_tools

    tools_in_system = Prompting.of(model).tools_in_system
    items = [item for item in evaluate.items_of(split_file(data, split), tools_in_system) if item.step == "parse"]
    items = items[:limit]
    backend = GLMBackend.load(model, LoadOptions(device="cpu"), CallConstraint.of(derived_tools()))
    results = []
    for value in bonus:
        backend.span_bonus = value
        summary = evaluate.summarize(evaluate.run(backend, items))
        results.append(
            {"bonus": value, "items": len(items), "call_exact": summary["call_exact"]}
            | {name: summary["argument_exact"].get(name) for name in QUOTED}
        )
    return results


def main() -> None:
    parser_ = parser(__doc__, "span_bonus", model="model folder", data="folder with the splits (made if missing)")
    parser_.add_argument("--bonus", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0], help="values to try")
    parser_.add_argument("--split", choices=SPLITS, default="dev", help="the development split to score")
    parser_.add_argument("--limit", type=int, default=600, help="score the first N parse items (0: all)")
    arguments = parser_.parse_args()
    where = machine()
    results = score(arguments.model, arguments.data, arguments.split, arguments.bonus, arguments.limit or None)
    show(
        f"span bonus of {arguments.model} on {arguments.split} ({results[0]['items']} parse items, constrained)",
        ("bonus", "call exact", *(f"{name} exact" for name in QUOTED)),
        [(r["bonus"], *(percent(r[key]) for key in ("call_exact", *QUOTED))) for r in results],
    )
    save({"machine": where, "model": str(arguments.model), "split": arguments.split, "results": results}, arguments.out)


if __name__ == "__main__":
    guarded(main)

"""Accuracy of the language core: the evaluation table on test_seen and test_unseen, and by noise level.

    .venv/bin/python bench/accuracy.py                                  # the shipped default
    .venv/bin/python bench/accuracy.py --model BASE --prefix ADAPTER    # before / after a P-tuning v2 prefix
    .venv/bin/python bench/accuracy.py --free                           # the model alone, calls unconstrained
    .venv/bin/python bench/accuracy.py --known-sites                    # decoding knows the sites, as chat does

Each split is scored as `inspector eval` scores it (teacher-forced: the model writes every assistant message
after the gold history; calls checked BFCL-style, reports exactly and for fidelity), which also writes its
eval.json and eval.md beside the JSON (`<out without .json>/<split>/`). With --prefix the model is evaluated
without and with the prefix; the shipped default is trained directly and has none.
"""

import csv
import re
from pathlib import Path
from typing import Any

from common import guarded, machine, parser, percent, save, show, split_file

from agent.chatglm_format import read_dialogues
from agent.eval_report import ROWS
from prompts import load

SPLITS = ("test_seen", "test_unseen")


def rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per metric, then per noise level (call exact / report exact); a column per split and variant."""
    columns = [(split, variant) for split, result in results.items() for variant in result["variants"]]

    def overall(key: str) -> list[str]:
        return [percent(results[split]["variants"][variant]["overall"][key]) for split, variant in columns]

    table = [("items", *(str(results[split]["items"]) for split, _ in columns))]
    table += [(label, *overall(key)) for label, key in ROWS]
    levels = sorted({level for s, v in columns for level in results[s]["variants"][v]["by_noise"]})
    for level in levels:
        cells = []
        for split, variant in columns:
            noise = results[split]["variants"][variant]["by_noise"].get(level)
            exact = f"{percent(noise['call_exact'])} / {percent(noise['report_exact'])}" if noise else "–"
            cells.append(f"{exact} ({noise['items']})" if noise else exact)
        table.append((f"noise {level}: call / report exact (items)", *cells))
    return table


def split_database(data: Path, split: str, out: Path) -> Path:
    """A work-order database of the sites a split's tools know, as a deployment's database holds every site its
    inspectors name: the sites its observations resolved (`site`) and those an ambiguous name's error lists.
    A name the split only heard (an unknown site) is not in it."""
    from tools import db
    from tools.imports import import_sites

    ambiguous = re.compile(load("observations")["errors"]["ambiguous_site"].format(site=".*", candidates="(.*)"))
    names: set[str] = set()
    for dialogue in read_dialogues(split_file(data, split)):
        for turn in dialogue.conversations:
            observation = turn.observation if turn.role == "tool" else None
            if isinstance(observation, dict) and "site" in observation:
                names.add(observation["site"])
            elif isinstance(observation, dict) and (listed := ambiguous.fullmatch(str(observation.get("error")))):
                names.update(listed.group(1).split("、"))
    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    sites, database = folder / "sites.csv", folder / "sites.sqlite"
    with sites.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([("name", "region", "aliases"), *((name, "", "") for name in sorted(names))])
    database.unlink(missing_ok=True)
    db.init(database)
    import_sites(database, sites)
    return database


def main() -> None:
    parser_ = parser(__doc__, "accuracy", model="model folder", data="folder with the splits (made if missing)")
    parser_.add_argument("--prefix", type=Path, help="a P-tuning v2 adapter: evaluate without and with it")
    parser_.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to score")
    parser_.add_argument("--limit", type=int, help="score only the first N items of each split")
    parser_.add_argument("--latency-samples", type=int, default=50, help="unbatched timings per step (eval.md)")
    parser_.add_argument("--free", action="store_true", help="decode calls without the tools' schemas")
    parser_.add_argument(
        "--known-sites", action="store_true", help="decode with a database of the sites each split's tools resolved"
    )
    arguments = parser_.parse_args()

    from agent.eval_cli import run_evaluation

    where = machine()
    folder = arguments.out.with_suffix("")
    results = {
        split: run_evaluation(
            arguments.model,
            split_file(arguments.data, split),
            folder / split,
            prefix=arguments.prefix,
            compare=arguments.prefix is not None,
            limit=arguments.limit,
            latency_samples=arguments.latency_samples,
            constrained=not arguments.free,
            database=split_database(arguments.data, split, folder) if arguments.known_sites else None,
        )
        for split in arguments.splits
    }
    columns = [f"{split} · {variant}" for split, result in results.items() for variant in result["variants"]]
    show(
        f"accuracy of {arguments.model}"
        + (f" + {arguments.prefix}" if arguments.prefix else "")
        + (", free decoding" if arguments.free else ", constrained decoding")
        + (", the splits' sites known" if arguments.known_sites else ""),
        ("", *columns),
        rows(results),
    )
    save(
        {
            "machine": where,
            "model": str(arguments.model),
            "prefix": arguments.prefix and str(arguments.prefix),
            "decoding": "free" if arguments.free else "constrained",
            "known_sites": arguments.known_sites,
            "splits": results,
        },
        arguments.out,
    )


if __name__ == "__main__":
    guarded(main)

"""Accuracy of the language core: the evaluation table on test_seen and test_unseen, and by noise level.

    .venv/bin/python bench/accuracy.py                                  # the shipped default
    .venv/bin/python bench/accuracy.py --model BASE --prefix ADAPTER    # before / after a P-tuning v2 prefix
    .venv/bin/python bench/accuracy.py --free                           # the model alone, calls unconstrained

Each split is scored as `inspector eval` scores it (teacher-forced: the model writes every assistant message
after the gold history; calls checked BFCL-style, reports exactly and for fidelity), which also writes its
eval.json and eval.md beside the JSON (`<out without .json>/<split>/`). With --prefix the model is evaluated
without and with the prefix; the shipped default is trained directly and has none.
"""

from pathlib import Path
from typing import Any

from common import DATA, guarded, machine, parser, save, show, split_file

from agent.eval_report import ROWS
from agent.session import DEFAULT_MODEL

SPLITS = ("test_seen", "test_unseen")


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


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


def main() -> None:
    parser_ = parser(__doc__, "accuracy")
    parser_.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder")
    parser_.add_argument("--prefix", type=Path, help="a P-tuning v2 adapter: evaluate without and with it")
    parser_.add_argument("--data", type=Path, default=DATA, help="folder with the splits (made if missing)")
    parser_.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to score")
    parser_.add_argument("--limit", type=int, help="score only the first N items of each split")
    parser_.add_argument("--latency-samples", type=int, default=50, help="unbatched timings per step (eval.md)")
    parser_.add_argument("--free", action="store_true", help="decode calls without the tools' schemas")
    arguments = parser_.parse_args()

    from agent.eval_cli import run_evaluation

    where = machine()
    results = {
        split: run_evaluation(
            arguments.model,
            split_file(arguments.data, split),
            arguments.out.with_suffix("") / split,
            prefix=arguments.prefix,
            compare=arguments.prefix is not None,
            limit=arguments.limit,
            latency_samples=arguments.latency_samples,
            constrained=not arguments.free,
        )
        for split in arguments.splits
    }
    columns = [f"{split} · {variant}" for split, result in results.items() for variant in result["variants"]]
    show(
        f"accuracy of {arguments.model}"
        + (f" + {arguments.prefix}" if arguments.prefix else "")
        + (", free decoding" if arguments.free else ", constrained decoding"),
        ("", *columns),
        rows(results),
    )
    save(
        {
            "machine": where,
            "model": str(arguments.model),
            "prefix": arguments.prefix and str(arguments.prefix),
            "decoding": "free" if arguments.free else "constrained",
            "splits": results,
        },
        arguments.out,
    )


if __name__ == "__main__":
    guarded(main)

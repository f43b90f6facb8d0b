"""The evaluation results as a Markdown table: one column per model variant."""

from typing import Any

ROWS = (
    ("tool selection", "tool_selection"),
    ("no tool call on greetings / ask-backs", "no_call_when_none_needed"),
    ("call exact match", "call_exact"),
    ("invalid or unparseable outputs", "invalid_or_unparseable"),
    ("greeting / ask-back exact", "reply_exact"),
    ("report exact match", "report_exact"),
    ("report fidelity", "report_fidelity"),
)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def markdown(results: dict[str, Any]) -> str:
    variants = results["variants"]
    names = list(variants)
    lines = [
        f"Evaluation of `{results['model']}` on `{results['split']}` ({results['items']} items, "
        f"{results.get('decoding', 'free')} decoding)",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, key in ROWS:
        lines.append(f"| {label} | " + " | ".join(_percent(variants[n]["overall"][key]) for n in names) + " |")
    arguments = sorted({a for n in names for a in variants[n]["overall"]["argument_exact"]})
    for argument in arguments:
        cells = [_percent(variants[n]["overall"]["argument_exact"].get(argument)) for n in names]
        lines.append(f"| argument `{argument}` exact | " + " | ".join(cells) + " |")
    steps = sorted({s for n in names for s in variants[n]["latency"]})
    for step in steps:
        cells = []
        for n in names:
            timing = variants[n]["latency"].get(step)
            cells.append(f"{timing['p50_ms']:.0f} / {timing['p95_ms']:.0f} ms" if timing else "–")
        lines.append(f"| {step} latency p50 / p95 | " + " | ".join(cells) + " |")
    for n in names:
        overall = variants[n]["overall"]
        for level, summary in variants[n]["by_noise"].items():
            exact = f"{_percent(summary['call_exact'])} / {_percent(summary['report_exact'])}"
            lines.append(
                _own_row(f"{n}: noise {level} ({summary['items']} items) call / report exact", n, names, exact)
            )
        if overall["report_exact_by_outcome"]:
            wrong = ", ".join(
                f"{name} {o['wrong']} of {o['items']}" for name, o in overall["report_exact_by_outcome"].items()
            )
            lines.append(_own_row(f"{n}: wrong reports by outcome", n, names, wrong))
        if overall["errors"]:
            errors = ", ".join(f"{label} {count}" for label, count in overall["errors"].items())
            lines.append(_own_row(f"{n}: errors", n, names, errors))
    return "\n".join(lines) + "\n"


def _own_row(label: str, name: str, names: list[str], text: str) -> str:
    """A row about one variant: `text` in its column, the others empty."""
    return f"| {label} | " + " | ".join(text if other == name else "" for other in names) + " |"

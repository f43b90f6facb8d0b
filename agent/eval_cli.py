"""`inspector eval`: accuracy and latency of a model (and its prefix) on a split, as JSON and Markdown."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.errors import UserError

SPLITS = ("test_seen", "test_unseen", "dev", "dev_unseen")


def evaluate(
    model: Annotated[Path, typer.Option(help="Model folder (native GLM with tokenizer.model).")],
    split: Annotated[str, typer.Option(help="test_seen, test_unseen, dev or dev_unseen.")] = "test_unseen",
    data: Annotated[Path, typer.Option(help="Folder written by `inspector data generate`.")] = Path("runs/data"),
    out: Annotated[Path, typer.Option(help="Folder for eval.json and eval.md.")] = Path("runs/eval"),
    prefix: Annotated[Path | None, typer.Option(help="A P-tuning v2 adapter folder to load on the model.")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Also evaluate the model without the prefix.")] = False,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N items (assistant messages).")] = None,
    batch_size: Annotated[int, typer.Option(help="Items generated together.")] = 32,
    latency_samples: Annotated[int, typer.Option(help="Unbatched timings per step for p50/p95.")] = 50,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    free: Annotated[
        bool, typer.Option("--free", help="Decode calls unconstrained: the model alone, without the tools' schemas.")
    ] = False,
    db: Annotated[
        Path | None, typer.Option(help="A work-order database whose sites decoding knows, as chat, run and replay do.")
    ] = None,
) -> None:
    """Score tool calls (BFCL-style), replies and reports teacher-forced; time each step unbatched."""
    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    if compare and prefix is None:
        raise UserError("--compare puts the model without its prefix beside it: give --prefix too")
    path = data / f"{split}.jsonl"
    if not path.is_file():
        raise UserError(f"{path} does not exist; write it with `inspector data generate --out {data}`")
    run_evaluation(
        model,
        path,
        out,
        prefix=prefix,
        compare=compare,
        limit=limit,
        batch_size=batch_size,
        latency_samples=latency_samples,
        device=device,
        constrained=not free,
        database=db,
    )


def run_evaluation(
    model: Path,
    path: Path,
    out: Path,
    *,
    prefix: Path | None = None,
    compare: bool = False,
    limit: int | None = None,
    batch_size: int = 32,
    latency_samples: int = 50,
    device: str = "auto",
    constrained: bool = True,
    database: Path | None = None,
) -> dict[str, Any]:
    """Evaluate on the dialogues of `path`; writes `eval.json` and `eval.md` into `out` and prints the table.

    With a `database`, constrained decoding knows its sites (agent/call_constraint.py, `choose_span`).
    """
    from rich.console import Console

    from agent import evaluate as ev
    from agent.call_constraint import CallConstraint
    from agent.eval_report import markdown
    from agent.glm_backend import GLMBackend
    from agent.loading import LoadOptions
    from agent.prompting import Prompting
    from agent.session import registered_sites
    from tools.catalog import derived_tools
    from tools.sites import unambiguous_names

    items = ev.items_of(path, Prompting.of(prefix or model).tools_in_system)[: limit or None]
    console = Console()
    variants = [("with prefix" if prefix else "model", prefix)]
    if compare:
        variants.insert(0, ("without prefix", None))
    decoding = "constrained" if constrained else "free"
    results: dict[str, Any] = {
        "model": str(model),
        "split": path.stem,
        "items": len(items),
        "decoding": decoding,
        "database": database and str(database),
        "variants": {},
    }
    sites = unambiguous_names(registered_sites(database)) if database else frozenset()
    constraint = CallConstraint.of(derived_tools(), sites) if constrained else None
    for name, adapter in variants:
        options = LoadOptions(device=device, prefix=adapter)  # type: ignore[arg-type]
        backend = GLMBackend.load(model, options, constraint)
        with console.status(f"evaluating {name} on {len(items)} items of {path.stem}"):
            scored = ev.run(backend, items, batch_size=batch_size)
            results["variants"][name] = {
                "overall": ev.summarize(scored),
                "by_noise": ev.by_noise(scored),
                "latency": ev.latencies(backend, items, latency_samples),
                "examples_of_errors": [
                    {"step": s.item.step, "gold": str(s.item.gold), "output": s.output, "error": s.verdict}
                    for s in scored
                    if s.verdict != "ok"
                ][:20],
            }
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    table = markdown(results)
    (out / "eval.md").write_text(table, encoding="utf-8")
    console.print(table, markup=False, highlight=False)
    console.print(f"wrote {out / 'eval.json'} and {out / 'eval.md'}")
    return results


def register(app: typer.Typer) -> None:
    app.command(name="eval")(evaluate)

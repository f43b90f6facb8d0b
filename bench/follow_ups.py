"""A greeting after a finished check: is it answered as a greeting, or does the model run a check again?

    .venv/bin/python bench/follow_ups.py                   # the shipped default, dev, test_unseen, dev_unseen
    .venv/bin/python bench/follow_ups.py --model DIR --count 300

The generated splits greet only at a dialogue's start. Each split's dialogues that ran a tool get a greeting of
that split's own frames afterwards (training_data/follow_ups.py: seen frames for dev, held-out ones for
test_unseen and dev_unseen), and the model writes the message after it, teacher-forced and constrained as
`inspector eval` does: exact when it is the greeting reply, `unexpected_call` when it calls a tool.
"""

from pathlib import Path
from typing import Any

from common import guarded, machine, parser, save, show, split_file

SPLITS = {"dev": False, "test_unseen": True, "dev_unseen": True}  # split: whether its greetings are held-out frames


def score(model: Path, data: Path, count: int, out: Path) -> list[dict[str, Any]]:
    from agent import evaluate
    from agent.call_constraint import CallConstraint
    from agent.chatglm_format import read_dialogues
    from agent.glm_backend import GLMBackend
    from agent.loading import LoadOptions
    from agent.prompting import Prompting
    from tools.catalog import derived_tools
    from training_data.follow_ups import follow_ups

    tools_in_system = Prompting.of(model).tools_in_system
    backend = GLMBackend.load(model, LoadOptions(device="cpu"), CallConstraint.of(derived_tools()))
    results = []
    for split, held_out in SPLITS.items():
        made = follow_ups(read_dialogues(split_file(data, split)), seed=0, count=count, held_out=held_out)
        written = out.with_suffix("") / f"{split}.jsonl"
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_text("".join(f"{d.model_dump_json()}\n" for d in made), encoding="utf-8")
        items = [
            item
            for item in evaluate.items_of(written, tools_in_system)
            if item.step == "greet" and any(message.role == "observation" for message in item.history)
        ]
        summary = evaluate.summarize(evaluate.run(backend, items))
        results.append({"split": split, "items": len(items), "exact": summary["reply_exact"], **summary["errors"]})
    return results


def main() -> None:
    parser_ = parser(__doc__, "follow_ups", model="model folder", data="folder with the splits (made if missing)")
    parser_.add_argument("--count", type=int, default=500, help="follow-ups per split")
    arguments = parser_.parse_args()
    where = machine()
    results = score(arguments.model, arguments.data, arguments.count, arguments.out)
    show(
        f"a greeting after a finished check, {arguments.model} (constrained)",
        ("split", "items", "greeting reply exact", "tool called instead"),
        [(r["split"], r["items"], f"{100 * r['exact']:.1f} %", r.get("unexpected_call", 0)) for r in results],
    )
    save({"machine": where, "model": str(arguments.model), "results": results}, arguments.out)


if __name__ == "__main__":
    guarded(main)

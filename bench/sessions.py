"""A request after a finished check in one chat session: prompted with the whole session so far, or alone.

    .venv/bin/python bench/sessions.py                   # the shipped default, dev and dev_unseen
    .venv/bin/python bench/sessions.py --model DIR --count 300

A session is two dialogues of a split that ran a tool, the second one the inspector's next request, with or
without a greeting between them (training_data/follow_ups.py: the split's own frames, its reply learned by
the shipped default). The second dialogue's messages are scored teacher-forced and constrained as `inspector
eval` scores them, twice: after the whole session (the prompt of a model without `fresh_after_check` in its
prompting.json) and alone (the agent's prompt for a model with it: agent/memory.py).
"""

import random
from pathlib import Path
from typing import Any

from common import guarded, machine, parser, percent, save, show, split_file

SPLITS = {"dev": False, "dev_unseen": True}  # split: whether its greetings are held-out frames
BETWEEN = ("nothing", "a greeting")
SCORES = ("call_exact", "reply_exact", "report_exact")


def sessions(dialogues: list[Any], count: int, seed: str, greeting: bool, held_out: bool) -> list[tuple[Any, Any]]:
    """`count` (session, its second dialogue) pairs of the dialogues that ran a tool, drawn from `seed`."""
    from agent.chatglm_format import Dialogue
    from training_data.follow_ups import follow_up, ran_a_tool

    rng = random.Random(seed)
    ran = [dialogue for dialogue in dialogues if ran_a_tool(dialogue)]
    pairs = []
    for _ in range(count):
        first, second = rng.choice(ran), rng.choice(ran)
        if greeting:
            first = follow_up(first, rng, held_out)
        turns = [turn.model_dump() for turn in (*first.conversations, *second.conversations)]
        pairs.append((Dialogue.model_validate({"tools": second.tools, "conversations": turns}), second))
    return pairs


def score(model: Path, data: Path, count: int) -> list[dict[str, Any]]:
    from agent import evaluate
    from agent.call_constraint import CallConstraint
    from agent.chatglm_format import dialogue_messages, read_dialogues
    from agent.glm_backend import GLMBackend
    from agent.loading import LoadOptions
    from agent.prompting import Prompting
    from tools.catalog import derived_tools

    tools_in_system = Prompting.of(model).tools_in_system
    backend = GLMBackend.load(model, LoadOptions(device="cpu"), CallConstraint.of(derived_tools()))

    def own(dialogue: Any) -> int:
        return sum(message.role != "system" for message in dialogue_messages(dialogue))

    results = []
    for split, held_out in SPLITS.items():
        dialogues = read_dialogues(split_file(data, split))
        for between in BETWEEN:
            pairs = sessions(dialogues, count, f"sessions-{split}-{between}", between != "nothing", held_out)
            whole = [
                item
                for session, second in pairs
                for item in evaluate.dialogue_items(session, tools_in_system, own(session) - own(second))
            ]
            alone = [item for _, second in pairs for item in evaluate.dialogue_items(second, tools_in_system)]
            row: dict[str, Any] = {"split": split, "between": between, "items": len(whole)}
            for prompt, items in (("whole", whole), ("alone", alone)):
                summary = evaluate.summarize(evaluate.run(backend, items))
                row[prompt] = {key: summary[key] for key in SCORES} | {"errors": summary["errors"]}
            results.append(row)
    return results


def main() -> None:
    parser_ = parser(__doc__, "sessions", model="model folder", data="folder with the splits (made if missing)")
    parser_.add_argument("--count", type=int, default=300, help="sessions per split and kind")
    arguments = parser_.parse_args()
    where = machine()
    results = score(arguments.model, arguments.data, arguments.count)
    show(
        f"a request after a finished check, {arguments.model} (constrained): whole session / alone",
        ("split", "between", "items", "call exact", "greeting / ask-back exact", "report exact"),
        [
            (
                r["split"],
                r["between"],
                r["items"],
                *(f"{percent(r['whole'][key])} / {percent(r['alone'][key])}" for key in SCORES),
            )
            for r in results
        ],
    )
    save({"machine": where, "model": str(arguments.model), "results": results}, arguments.out)


if __name__ == "__main__":
    guarded(main)

"""Follow-ups: a greeting after a finished check, answered as a greeting, with only that answer learned.

The generated multi-turn dialogues greet first (`greet_then_request`) and never after a check has run, and a
model trained on them alone answered `你是谁` after a head count by running that head count again. A follow-up
is a dialogue of the training split that ran a tool, as it was, with every turn marked `"loss": false`, and
then the inspector's greeting (a frame of the split's greeting family, heard at a drawn noise level, as the
generator says it) and the greeting reply of prompts/reports.toml, the only turn learned.
"""

import random

from agent.chatglm_format import Dialogue
from prompts import load as load_prompts
from training_data.noise import add_noise, draw_level
from training_data.templates import fill, templates, text


def ran_a_tool(dialogue: Dialogue) -> bool:
    """Whether `dialogue` ends in the assistant's answer after a tool ran."""
    turns = dialogue.conversations
    return turns[-1].role == "assistant" and any(turn.role == "tool" for turn in turns)


def follow_up(dialogue: Dialogue, rng: random.Random, held_out: bool = False) -> Dialogue:
    """`dialogue` (nothing of it learned) with a greeting after it and the greeting reply, learned."""
    frame = rng.choice(templates("greeting", held_out=held_out))
    greeting, _ = add_noise(rng, fill(frame, {}), draw_level(rng))
    conversations = [turn.model_copy(update={"loss": False}) for turn in dialogue.conversations]
    added = [
        {"role": "user", "content": text(greeting), "loss": False},
        {"role": "assistant", "content": greeting_reply()},
    ]
    return Dialogue.model_validate({"tools": dialogue.tools, "conversations": [*conversations, *added]})


def greeting_reply() -> str:
    return load_prompts("reports")["greeting"]


def follow_ups(dialogues: list[Dialogue], seed: int, count: int, held_out: bool = False) -> list[Dialogue]:
    """`count` follow-ups of the dialogues that ran a tool, deterministically from `seed`."""
    rng = random.Random(f"follow-ups-{seed}")
    found = [d for d in dialogues if ran_a_tool(d)]
    if not found:
        raise ValueError("no dialogue that ran a tool to follow up")
    return [follow_up(found[rng.randrange(len(found))], rng, held_out) for _ in range(count)]

"""Training examples: dialogues encoded with ChatGLM3's labels, their shared head, and batches.

Every dialogue of the inspector data starts with the same system message (the tools), hundreds of tokens
long. `shared_head` finds that common start so the trainer runs it once per batch instead of once per
example; the rest of each example is batched by similar length in a seeded, resumable order.
"""

import random
from dataclasses import dataclass
from pathlib import Path

from agent.chatglm_format import IGNORE, Encoded, dialogue_messages, encode_training, read_dialogues
from agent.errors import UserError
from agent.stand_ins import Practice
from agent.tokenizer import GLMTokenizer


@dataclass(frozen=True)
class Batch:
    """Example rows after the shared head, right-padded; `tokens` counts the learned labels."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    mask: list[list[int]]
    tokens: int


def load_examples(
    path: Path,
    tokenizer: GLMTokenizer,
    max_length: int,
    tools_in_system: bool = True,
    practice: Practice | None = None,
) -> list[Encoded]:
    """Encode every dialogue of `path`; one longer than `max_length` tokens is an error, never truncated.

    Without `tools_in_system` the dialogues' tools are left out of the prompt (see agent/prompting.py);
    with `practice` some of the user's characters are written as stand-ins (agent/stand_ins.py).
    """
    dialogues = [
        dialogue_messages(dialogue if tools_in_system else dialogue.model_copy(update={"tools": None}))
        for dialogue in read_dialogues(path)
    ]
    examples = []
    for number, messages in enumerate(practice.dialogues(dialogues) if practice else dialogues, start=1):
        example = encode_training(tokenizer, messages)
        if len(example.input_ids) > max_length:
            raise UserError(
                f"{path}: dialogue {number} is {len(example.input_ids)} tokens, longer than the model's "
                f"context of {max_length}; shorten it or train a model with a longer context"
            )
        if all(label == IGNORE for label in example.labels):
            raise UserError(f"{path}: dialogue {number} has nothing to learn (no assistant message with loss)")
        examples.append(example)
    if not examples:
        raise UserError(f"{path} holds no dialogues")
    return examples


def shared_head(examples: list[Encoded]) -> list[int]:
    """The longest start all examples share that carries no loss and leaves every example a rest."""
    first = examples[0].input_ids
    size = min(len(example.input_ids) for example in examples) - 1
    for example in examples:
        ids = example.input_ids
        size = next((i for i in range(size) if ids[i] != first[i]), size)
    while size > 0 and any(example.labels[size] != IGNORE for example in examples):
        size -= 1
    return first[:size]


def batch_order(
    examples: list[Encoded], batch_size: int, seed: int, epoch: int, by_length: bool = True
) -> list[list[int]]:
    """Indices of each batch of one epoch: shuffled, then grouped by similar length (unless not
    `by_length`), batches shuffled.

    A function of (seed, epoch) alone, so a resumed run sees exactly the batches it would have seen.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 64 if by_length else len(order)
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        if by_length:
            chunk.sort(key=lambda i: len(examples[i].input_ids))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def interleave(first: list[list[int]], second: list[list[int]]) -> list[list[int]]:
    """first[0], second[0], first[1], second[1], … and then the rest of the longer list."""
    common = min(len(first), len(second))
    return [b for pair in zip(first, second, strict=False) for b in pair] + first[common:] + second[common:]


def make_batch(examples: list[Encoded], head: int, pad_id: int) -> Batch:
    rests = [(example.input_ids[head:], example.labels[head:]) for example in examples]
    width = max(len(ids) for ids, _ in rests)
    return Batch(
        input_ids=[ids + [pad_id] * (width - len(ids)) for ids, _ in rests],
        labels=[labels + [IGNORE] * (width - len(labels)) for _, labels in rests],
        mask=[[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rests],
        tokens=sum(label != IGNORE for _, labels in rests for label in labels[1:]),
    )

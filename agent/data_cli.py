"""`inspector data …`: generate the training data, encode dialogues, show how a dialogue tokenizes."""

import json
from pathlib import Path
from typing import Annotated

import typer

data = typer.Typer(help="Training data: generate, encode, inspect.", no_args_is_help=True)

TokenizerOption = Annotated[
    Path, typer.Option("--tokenizer", help="A tokenizer.model file, or a model directory holding one.")
]
DialoguesArgument = Annotated[Path, typer.Argument(help="Dialogues in ChatGLM3's fine-tuning JSONL format.")]


@data.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write train/dev/test_seen/test_unseen/dev_unseen JSONL into.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 0,
    size: Annotated[int, typer.Option(help="Training dialogues; each other split gets max(200, size/20).")] = 20000,
) -> None:
    """Write the inspector's ChatGLM3 fine-tuning data (five splits) and print per-split statistics."""
    from training_data.generate import generate_splits

    generate_splits(out, seed=seed, size=size)


@data.command()
def encode(
    file: DialoguesArgument,
    tokenizer: TokenizerOption,
    prompt: Annotated[
        bool, typer.Option("--prompt", help="Encode the prompt for each dialogue's last plain assistant reply.")
    ] = False,
) -> None:
    """Print one JSON line per dialogue: {"input_ids", "labels"} as ChatGLM3's fine-tuning computes them."""
    from agent.chatglm_format import (
        dialogue_messages,
        encode_prompt,
        encode_training,
        last_reply_prompt,
        read_dialogues,
    )
    from agent.errors import UserError
    from agent.tokenizer import GLMTokenizer

    tok = GLMTokenizer.load(tokenizer)
    for number, dialogue in enumerate(read_dialogues(file), start=1):
        messages = dialogue_messages(dialogue)
        if prompt:
            try:
                before, _ = last_reply_prompt(messages)
            except ValueError as err:
                raise UserError(f"{file}: dialogue {number}: {err}") from None
            record: dict[str, list[int]] = {"input_ids": encode_prompt(tok, before)}
        else:
            encoded = encode_training(tok, messages)
            record = {"input_ids": encoded.input_ids, "labels": encoded.labels}
        typer.echo(json.dumps(record))


@data.command()
def show(
    file: DialoguesArgument,
    tokenizer: TokenizerOption,
    index: Annotated[int, typer.Option(help="Which dialogue of the file (0-based).")] = 0,
    ids: Annotated[bool, typer.Option("--ids", help="Print each token's id beside its piece.")] = False,
) -> None:
    """Render one dialogue token by token, marking the tokens that carry loss."""
    from agent.chatglm_format import dialogue_messages, encode_training, read_dialogues
    from agent.errors import UserError
    from agent.token_view import render_tokens
    from agent.tokenizer import GLMTokenizer

    dialogues = read_dialogues(file)
    if not 0 <= index < len(dialogues):
        raise UserError(f"{file} has {len(dialogues)} dialogues; --index {index} is out of range")
    tok = GLMTokenizer.load(tokenizer)
    render_tokens(tok, encode_training(tok, dialogue_messages(dialogues[index])), show_ids=ids)


def register(app: typer.Typer) -> None:
    app.add_typer(data, name="data")

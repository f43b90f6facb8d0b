"""`inspector data …`: generate the training data, encode dialogues, show how a dialogue tokenizes."""

from pathlib import Path
from typing import Annotated

import typer

data = typer.Typer(help="Training data: generate, encode, inspect.", no_args_is_help=True)


@data.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write train/dev/test_seen/test_unseen JSONL into.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 0,
    size: Annotated[int, typer.Option(help="Number of training dialogues.")] = 20000,
) -> None:
    """Write the inspector's ChatGLM3 fine-tuning data (four splits) and print per-split statistics."""
    from training_data.generate import generate_splits

    generate_splits(out, seed=seed, size=size)


def register(app: typer.Typer) -> None:
    app.add_typer(data, name="data")

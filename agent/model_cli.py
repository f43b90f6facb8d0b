"""`inspector model …`: turn released ChatGLM3 checkpoints into the native GLM models the agent loads."""

from pathlib import Path
from typing import Annotated

import typer

model = typer.Typer(help="Language models: convert released checkpoints.", no_args_is_help=True)


@model.command("convert-chatglm3")
def convert_chatglm3(
    src: Annotated[
        Path,
        typer.Argument(
            help="Released ChatGLM3 folder: ChatGLM's config.json plus pytorch_model*.bin or "
            "model*.safetensors (sharded with their index.json, or one file).",
            show_default=False,
        ),
    ],
    dst: Annotated[Path, typer.Argument(help="New (or empty) folder for the native GLM model.", show_default=False)],
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="ChatGLM3 tokenizer.model to copy into DST when SRC has none.", show_default=False),
    ] = None,
) -> None:
    """Convert a ChatGLM3 checkpoint into transformers' native GLM format (loads without remote code).

    DST gets config.json, generation_config.json and safetensors weights (in the checkpoint's dtype).

    It also gets tokenizer.model (from SRC, else --tokenizer) and conversion.json (source and versions).
    """
    from rich.console import Console
    from rich.table import Table

    from agent.convert import convert_chatglm3 as convert

    record = convert(src, dst, tokenizer)
    table = Table(title=f"wrote {dst}", title_justify="left")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for path in sorted(dst.iterdir()):
        table.add_row(path.name, f"{path.stat().st_size:,}")
    console = Console()
    console.print(table)
    console.print(f"{record.parameters:,} parameters, {record.dtype}, rope theta {record.rope_theta:g}")
    if record.tokenizer is None:
        console.print(f"[yellow]{dst} has no tokenizer: {src} lacks tokenizer.model, no --tokenizer given[/]")
    else:
        console.print(f"tokenizer copied from {record.tokenizer}")


@model.command("import-chatglm3-prefix")
def import_chatglm3_prefix(
    src: Annotated[
        Path,
        typer.Argument(
            help="Checkpoint of ChatGLM3's P-tuning v2 scripts: config.json with pre_seq_len, and "
            "pytorch_model.bin or model.safetensors holding transformer.prefix_encoder.*.",
            show_default=False,
        ),
    ],
    dst: Annotated[Path, typer.Argument(help="Folder for the peft prefix-tuning adapter.", show_default=False)],
    base: Annotated[
        Path, typer.Option(help="The native GLM model converted from the ChatGLM3 the prefix was trained on.")
    ],
) -> None:
    """Import a ChatGLM3 P-tuning v2 prefix as an adapter for --base (load it with its folder as the prefix)."""
    from rich.console import Console

    from agent.chatglm3_prefix import import_chatglm3_prefix as run_import

    imported = run_import(src, dst, base)
    mlp = ", ChatGLM3's prefix MLP applied" if imported.projected else ""
    Console().print(f"wrote {dst}: {imported.pre_seq_len} virtual tokens for {imported.layers} layers{mlp}")


def register(app: typer.Typer) -> None:
    app.add_typer(model, name="model")

"""`inspector train …`: train the inspector's language model on the dialogues of `inspector data generate`."""

import shutil
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.errors import ConfigError
from agent.train_config import TrainConfig

if TYPE_CHECKING:
    from rich.console import Console

    from agent.chatglm_format import Encoded
    from agent.tokenizer import GLMTokenizer

train = typer.Typer(help="Train the language model: P-tuning v2 prefixes, the shipped default.", no_args_is_help=True)

DEFAULTS = {field.name: field.default for field in fields(TrainConfig)}
SPLITS = ("train", "dev")


@train.command()
def ptuning(
    base: Annotated[
        Path,
        typer.Option(help="Native GLM model folder with its tokenizer.model (`inspector model convert-chatglm3`)."),
    ],
    data: Annotated[Path, typer.Option(help="Folder with train.jsonl and dev.jsonl in ChatGLM3's format.")],
    out: Annotated[
        Path, typer.Option(help="Folder for the adapter, train_config.json, train_log.jsonl, loss_curve.png.")
    ],
    pre_seq_len: Annotated[int, typer.Option(help="Virtual prefix tokens.")] = DEFAULTS["pre_seq_len"],
    prefix_projection: Annotated[
        bool, typer.Option(help="Train the prefix through peft's two-layer MLP (saved already applied).")
    ] = DEFAULTS["prefix_projection"],
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, linear decay).")] = DEFAULTS["lr"],
    batch_size: Annotated[int, typer.Option(help="Dialogues per batch.")] = DEFAULTS["batch_size"],
    grad_accum: Annotated[int, typer.Option(help="Batches per optimizer step.")] = DEFAULTS["grad_accum"],
    max_steps: Annotated[int, typer.Option(help="Optimizer steps to train.")] = DEFAULTS["max_steps"],
    eval_every: Annotated[int, typer.Option(help="Steps between dev evaluations.")] = DEFAULTS["eval_every"],
    save_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = DEFAULTS["save_every"],
    quantize: Annotated[
        int | None, typer.Option(help="Load the frozen base in bitsandbytes 4-bit (NF4) or 8-bit.", show_default=False)
    ] = DEFAULTS["quantize"],
    seed: Annotated[int, typer.Option(help="Seed of the prefix's start and the data order.")] = DEFAULTS["seed"],
    resume: Annotated[
        bool | None,
        typer.Option(
            "--resume/--no-resume",
            help="Continue from OUT's checkpoint (default: whenever there is one), or start over, discarding it.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Train a P-tuning v2 prefix (peft prefix tuning) on a frozen GLM base; only the prefix learns.

    The loss is ChatGLM3's: the tokens its format labels. Checkpoints let an interrupted run continue exactly.
    """
    from rich.console import Console

    from agent.loading import LoadOptions, check_model_dir, load_model
    from agent.trainer import CHECKPOINT_DIR, Trainer, prepare_model

    config = TrainConfig(
        method="ptuning",
        base=str(base.resolve()),
        data=str(data.resolve()),
        out=str(out.resolve()),
        pre_seq_len=pre_seq_len,
        prefix_projection=prefix_projection,
        lr=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_steps=max_steps,
        eval_every=eval_every,
        save_every=save_every,
        quantize=quantize,
        seed=seed,
    )
    options = LoadOptions(device=device, quantize=quantize)
    resuming = wants_resume(config, resume)
    check_model_dir(base)
    tokenizer = base_tokenizer(base)
    train_set, dev_set = read_splits(data, tokenizer, base)
    model = prepare_model(config, load_model(base, options))

    console = Console()
    trainer = Trainer(config, model, tokenizer, train_set, dev_set, console=console)
    if resuming:
        if not trainer.resume():
            raise ConfigError(f"{out / CHECKPOINT_DIR} is incomplete; pass --no-resume to start over")
        console.print(f"resuming {out} at step {trainer.position.step}")
    else:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    trainer.run()
    trainer.save_model()
    print_summary(console, config)


def wants_resume(config: TrainConfig, resume: bool | None) -> bool:
    """Whether to continue from `out`'s checkpoint: only one written by this very configuration."""
    from agent.trainer import CHECKPOINT_DIR

    out = Path(config.out)
    if not (out / CHECKPOINT_DIR).is_dir():
        if resume:
            raise ConfigError(f"--resume: {out} has no checkpoint to continue from")
        return False
    if resume is False:
        return False
    saved = TrainConfig.load(out)
    changed = [
        f"{field.name} {getattr(saved, field.name)!r} → {getattr(config, field.name)!r}"
        for field in fields(TrainConfig)
        if getattr(saved, field.name) != getattr(config, field.name)
    ]
    if changed:
        raise ConfigError(
            f"{out} holds the checkpoint of another run ({', '.join(changed)}); repeat its settings, "
            "pass --no-resume to start over, or choose another --out"
        )
    return True


def base_tokenizer(base: Path) -> "GLMTokenizer":
    from agent.tokenizer import TOKENIZER_FILE, GLMTokenizer

    if not (base / TOKENIZER_FILE).is_file():
        raise ConfigError(
            f"{base} lacks {TOKENIZER_FILE}: copy ChatGLM3's tokenizer into it "
            "(`inspector model convert-chatglm3 --tokenizer` does when converting)"
        )
    return GLMTokenizer.load(base)


def read_splits(data: Path, tokenizer: "GLMTokenizer", base: Path) -> tuple[list["Encoded"], list["Encoded"]]:
    """The encoded train and dev dialogues, each at most the base's context long."""
    from transformers import AutoConfig

    from agent.examples import load_examples

    paths = [data / f"{split}.jsonl" for split in SPLITS]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise ConfigError(f"{data} lacks {', '.join(missing)} (`inspector data generate` writes them)")
    context = AutoConfig.from_pretrained(base).max_position_embeddings
    train_set, dev_set = (load_examples(path, tokenizer, context) for path in paths)
    return train_set, dev_set


def print_summary(console: "Console", config: TrainConfig) -> None:
    from rich.table import Table

    from agent import train_log
    from agent.loading import ADAPTER_WEIGHTS
    from agent.train_config import CONFIG_FILE

    out = Path(config.out)
    records = train_log.read(out)
    train_record = next(record for record in reversed(records) if "loss" in record)
    dev_loss = next(record["dev_loss"] for record in reversed(records) if "dev_loss" in record)
    table = Table(title=f"P-tuning v2 prefix trained: {out}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("steps", f"{train_record['step']:,}")
    table.add_row("train loss", f"{train_record['loss']:.4f}")
    table.add_row("dev loss", f"{dev_loss:.4f}")
    table.add_row("speed", f"{train_record['examples_per_s']:.1f} examples/s")
    for label, name in (
        ("adapter", ADAPTER_WEIGHTS),
        ("config", CONFIG_FILE),
        ("log", train_log.LOG_FILE),
        ("loss curve", train_log.CURVE_FILE),
    ):
        table.add_row(label, str(out / name))
    console.print(table)


@train.command()
def default(
    out: Annotated[Path, typer.Option(help="Where the model goes (the shipped one is models/default).")] = Path(
        "models/default"
    ),
    work: Annotated[Path, typer.Option(help="Generated data, tokenizer and evaluations.")] = Path("runs/default"),
    max_steps: Annotated[int | None, typer.Option(help="Override the recipe's optimizer steps.")] = None,
    evaluate: Annotated[bool, typer.Option(help="Evaluate on test_seen and test_unseen afterwards.")] = True,
) -> None:
    """Rebuild the shipped default model from nothing, deterministically (data → tokenizer → GLM → training)."""
    from dataclasses import replace

    from agent.default_model import Recipe, build
    from agent.eval_cli import run_evaluation

    recipe = Recipe() if max_steps is None else replace(Recipe(), max_steps=max_steps)
    build(out, recipe, work)
    if evaluate:
        for split in ("test_seen", "test_unseen"):
            run_evaluation(out, work / "data" / f"{split}.jsonl", work / "eval" / split, device="cpu")


def register(app: typer.Typer) -> None:
    app.add_typer(train, name="train")

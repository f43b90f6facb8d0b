"""The shipped default model: how it is built, from nothing, deterministically, on a 2-core CPU.

No pretrained GLM base can be had offline, so the recipe trains one: generate the inspector data, train the
project's SentencePiece tokenizer on it, initialise a small GLM of ChatGLM3's architecture and train it on
the task directly (full fine-tuning), then briefly on head counts with fresh counts (the recount phase).
P-tuning v2 stays the path for ChatGLM3-6B (see README: a prefix on a base this small cannot steer it to the
accuracy targets).
"""

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from agent import train_log
from agent.chatglm_format import Encoded, dialogue_messages, message_text, read_dialogues
from agent.machine import build_machine
from agent.prompting import Prompting
from agent.stand_ins import STAND_INS, Practice, alphabet
from agent.tokenizer import GLMTokenizer
from agent.train_config import OptimizerKind, TrainConfig

RECIPE_FILE = "recipe.json"
BUILD_FILE = "build.json"  # where it was built (agent/machine.py) and this run's wall-clock minutes
RECOUNT_DIR = "recount_phase"
RECOUNT_LOG = "recount_log.jsonl"


@dataclass(frozen=True)
class Recipe:
    """Every choice that decides the default model; saved beside it."""

    seed: int = 0
    data_size: int = 20000
    merges: int = 1500
    min_char_count: int = 5
    hidden: int = 256
    layers: int = 4
    heads: int = 8
    kv_heads: int = 2
    ffn: int = 704
    context: int = 2048
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    batch_size: int = 8
    max_steps: int = 2200
    # The main phase's optimizer (agent/optimizer.py: Muon on the decoder layers' matrices, AdamW on the rest);
    # the recount phase has its own. Muon learns to copy in fewer steps than AdamW, and its steps cost more:
    # 2,200 of them fit the 30-minute build (docs/default_model_history.md, Muon).
    optimizer: OptimizerKind = "muon"
    # Then the recount phase (training_data/recounts.py): `recount_steps` plainly shuffled batches, every
    # other one `batch_size` dialogues and the others `recount_batch_size` head-count dialogues with fresh
    # counts (one in 8 an order that sends nobody), at lr `recount_lr` (warm-up, then linear decay, as above).
    # Those batches hold `follow_ups` more dialogues each: one that ran a tool, then a greeting, answered
    # (training_data/follow_ups.py).
    recount_steps: int = 1200
    recount_batch_size: int = 16
    recount_lr: float = 3e-4
    recount_warmup_steps: int = 20
    follow_ups: int = 4
    # Recount batches learn through their reports only, their contexts run without gradients (agent/trainer.py
    # `tail_loss`): 1.8x faster phase steps that teach less each, so the phase takes twice the steps.
    recount_tails_only: bool = True
    # The recount phase trains only the top `recount_layers` layers (and the final norm and output); 0: all.
    # 2 had the fewest head counts wrong of its probes and lost held-out names (docs/default_model_history.md).
    recount_layers: int = 0
    # The phase's batches of plain dialogues are new ones, drawn as the training split's are (after every
    # split: training_data/generate.py `MORE`), instead of a sample of the training split seen again: with
    # twice the steps, re-shown names cost held-out calls, new ones keep them (README: the shipped default).
    recount_fresh: bool = True
    recount_optimizer: OptimizerKind = "muon"
    # How often the main phase scores `dev` and saves a checkpoint; the weights do not depend on it (tested).
    eval_every: int = 1100
    threads: int = 2
    # The tools' JSON is ~760 of each example's ~930 tokens; the task-trained model learns the tools from
    # the data instead (agent/prompting.py), which makes training ~2x faster on this CPU.
    tools_in_system: bool = False
    # Characters the tokenizer lacks reach the model as stand-ins (agent/stand_ins.py); training shows them
    # for 1 to `stand_in_most` of the user's characters in this share of the dialogues (AdamW learned to copy
    # too late with 0.6; Muon copies in time with 0.5: docs/default_model_history.md).
    stand_in_share: float = 0.5
    stand_in_most: int = 4
    # In this share of the dialogues, 1 to `stand_in_most` characters of the site's name are swapped for other
    # characters the tokenizer knows (agent/stand_ins.py `Practice.swaps`), so that a name is read from its
    # context, not from the training names' characters (`火星` was called as `火` without them).
    name_swaps: float = 0.3
    # Decoding: log-probability added per character of a quoted span (agent/glm_backend.py); the best of
    # bench/span_bonus.py's grid on the shipped model's dev split that leaves its dates as they were.
    span_bonus: float = 0.5
    # A request after a finished check is prompted as a conversation of its own (agent/memory.py): on `dev`
    # (bench/sessions.py) this model's calls after a finished check were 94 % exact with the whole session in
    # the prompt, 90 % with a greeting between, against 98 % alone (the AdamW default before it: 84 / 62 %;
    # README: the chat's memory). Decoding only, like the bonus: the weights do not depend on it.
    fresh_after_check: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.recount_layers <= self.layers:
            raise ValueError(f"recount_layers must be 0 (all) to {self.layers}, not {self.recount_layers}")


def corpus_texts(train_file: Path) -> list[str]:
    """Every distinct message text of the training split, as the tokenizer should see it."""
    texts: dict[str, None] = {}
    for dialogue in read_dialogues(train_file):
        for message in dialogue_messages(dialogue):
            texts.setdefault(message_text(message))
    return list(texts)


def initial_model(recipe: Recipe, tokenizer: GLMTokenizer) -> Any:
    """A randomly initialised GLM of ChatGLM3's architecture sized by the recipe."""
    import torch

    from agent.loading import prepare_transformers

    prepare_transformers()
    from transformers import GlmConfig, GlmForCausalLM

    config = GlmConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=recipe.hidden,
        intermediate_size=recipe.ffn,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.kv_heads,
        head_dim=recipe.hidden // recipe.heads,
        max_position_embeddings=recipe.context,
        attention_bias=True,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_id,
        bos_token_id=tokenizer.bos_id,
        eos_token_id=sorted(tokenizer.stop_ids),
    )
    torch.manual_seed(recipe.seed)
    return GlmForCausalLM(config)


def recount_phase(
    model: Any,
    tokenizer: GLMTokenizer,
    config: TrainConfig,
    recipe: Recipe,
    train: list[Encoded],
    dev: list[Encoded],
    work: Path,
    console: Console,
) -> None:
    """The recount phase after the main one (run files in `work/recount_phase`; a finished phase is kept)."""
    from agent.examples import load_examples
    from agent.trainer import Trainer
    from training_data.follow_ups import follow_ups
    from training_data.recounts import recounts

    dialogues = (recipe.recount_steps + 1) // 2 * recipe.batch_size
    count = recipe.recount_steps // 2 * recipe.recount_batch_size
    following = recipe.recount_steps // 2 * recipe.follow_ups
    if dialogues > len(train):
        raise ValueError(f"the recount phase needs {dialogues} training dialogues; the split has {len(train)}")
    data = work / "data"
    split = read_dialogues(data / "train.jsonl")
    made = recounts(split, recipe.seed, count) + follow_ups(split, recipe.seed, following)
    alternates = data / "recount_phase.jsonl"
    alternates.write_text("".join(f"{d.model_dump_json()}\n" for d in made), encoding="utf-8")
    if recipe.recount_fresh:
        sample = fresh_dialogues(recipe, dialogues, tokenizer, data / "recount_fresh.jsonl")
    else:
        sample = random.Random(f"recount-phase-{recipe.seed}").sample(train, dialogues)
    phase = replace(
        config,
        out=str(work / RECOUNT_DIR),
        lr=recipe.recount_lr,
        alternate_batch_size=recipe.recount_batch_size + recipe.follow_ups,
        warmup_steps=recipe.recount_warmup_steps,
        max_steps=recipe.recount_steps,
        eval_every=recipe.recount_steps,
        save_every=recipe.recount_steps,
        by_length=False,
        alternate_tails_only=recipe.recount_tails_only,
        optimizer=recipe.recount_optimizer,
    )
    alternate = load_examples(alternates, tokenizer, recipe.context, recipe.tools_in_system)
    if recipe.recount_layers:
        train_only_top(model, recipe.recount_layers)
    trainer = Trainer(phase, model, tokenizer, sample, dev, console, alternate)
    trainer.resume()
    trainer.run()


def fresh_dialogues(recipe: Recipe, count: int, tokenizer: GLMTokenizer, path: Path) -> list[Encoded]:
    """`count` training dialogues in no split (written to `path`), encoded with the training split's practice."""
    from agent.examples import load_examples
    from training_data.generate import MORE, GenerateConfig, make_splits, write_examples

    config = GenerateConfig.for_size(seed=recipe.seed, size=recipe.data_size)
    write_examples(path, make_splits(config, more=count)[MORE])
    return load_examples(path, tokenizer, recipe.context, recipe.tools_in_system, practice_of(recipe, tokenizer))


def practice_of(recipe: Recipe, tokenizer: GLMTokenizer) -> Practice:
    """How the recipe's training dialogues show stand-ins and swap name characters (agent/stand_ins.py)."""
    return Practice(
        recipe.stand_in_share, recipe.stand_in_most, recipe.seed, swaps=recipe.name_swaps, alphabet=alphabet(tokenizer)
    )


def train_only_top(model: Any, layers: int) -> None:
    """Freeze all but the top `layers` decoder layers, the final norm and the output layer."""
    model.requires_grad_(False)
    for module in (*model.model.layers[-layers:], model.model.norm, model.lm_head):
        module.requires_grad_(True)


def build(out: Path, recipe: Recipe, work: Path, console: Console | None = None) -> Path:
    """Build the default model into `out` (data and run files under `work`); returns `out`."""
    import torch

    from agent.examples import load_examples
    from agent.sp_train import train_tokenizer
    from agent.trainer import Trainer
    from training_data.generate import generate_splits

    started = time.perf_counter()
    console = console or Console()
    torch.set_num_threads(recipe.threads)
    data = work / "data"
    generate_splits(data, seed=recipe.seed, size=recipe.data_size)
    tokenizer = train_tokenizer(
        corpus_texts(data / "train.jsonl"),
        work / "tokenizer",
        merges=recipe.merges,
        min_char_count=recipe.min_char_count,
        reserved=STAND_INS,
    )
    console.print(f"tokenizer: {tokenizer.n_pieces} pieces + {tokenizer.vocab_size - tokenizer.n_pieces} specials")
    model = initial_model(recipe, tokenizer)
    config = TrainConfig(
        method="full",
        base="scratch",
        data=str(data),
        out=str(out),
        lr=recipe.lr,
        batch_size=recipe.batch_size,
        grad_accum=1,
        max_steps=recipe.max_steps,
        warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay,
        eval_every=recipe.eval_every,
        save_every=recipe.eval_every,
        seed=recipe.seed,
        tools_in_system=recipe.tools_in_system,
        optimizer=recipe.optimizer,
    )
    context = recipe.context
    train = load_examples(
        data / "train.jsonl",
        tokenizer,
        context,
        recipe.tools_in_system,
        practice_of(recipe, tokenizer),
    )
    dev = load_examples(data / "dev.jsonl", tokenizer, context, recipe.tools_in_system)
    trainer = Trainer(config, model, tokenizer, train, dev, console)
    trainer.resume()
    trainer.run()
    recount_phase(model, tokenizer, config, recipe, train, dev, work, console)
    trainer.save_model()
    shutil.copy(work / RECOUNT_DIR / train_log.LOG_FILE, out / RECOUNT_LOG)
    decoding = {"span_bonus": recipe.span_bonus, "fresh_after_check": recipe.fresh_after_check}
    replace(Prompting.of(out), stand_ins=STAND_INS, **decoding).save(out)
    (out / RECIPE_FILE).write_text(json.dumps(asdict(recipe), indent=2) + "\n", encoding="utf-8")
    built = {**build_machine(), "minutes": round((time.perf_counter() - started) / 60, 1)}
    (out / BUILD_FILE).write_text(json.dumps(built, indent=2) + "\n", encoding="utf-8")
    console.print(f"built in {built['minutes']} minutes on {built['cpu']} ({built['cpu_capability']})")
    return out

"""Write the five splits as ChatGLM3 fine-tuning JSONL, save the generation config, print statistics.

train, dev and test_seen use the seen frames and sites; test_unseen and dev_unseen only held-out frames and
held-out site names (dev_unseen: for choosing between models without looking at test_unseen). Splits are made
in that order from one `random.Random(seed)`, and a dialogue whose conversation already occurs in an earlier
split is drawn again, so no dialogue is in two splits; dev_unseen comes last, so the four splits before it are
what they were before it existed. Only the training split's site stems are lengthened, by a generator of their
own (training_data/sites.py).
"""

import json
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.errors import UserError
from agent.reports import CHECKS
from tools.catalog import tool_descriptions
from training_data.dialogues import KIND_CARDS, DialogueMaker

SPLITS = ("train", "dev", "test_seen", "test_unseen", "dev_unseen")
HELD_OUT = frozenset({"test_unseen", "dev_unseen"})  # splits of held-out frames and site names
MORE = "train_more"  # training dialogues made after every split (make_splits)
LENGTHENED = frozenset({"train", MORE})  # splits whose site stems are lengthened
CONFIG_FILE = "generate.json"
MIN_EVAL_SIZE = 200
EVAL_FRACTION = 20  # every split but train holds max(MIN_EVAL_SIZE, size // EVAL_FRACTION) dialogues each


@dataclass(frozen=True)
class GenerateConfig:
    seed: int
    size: int
    eval_size: int

    @classmethod
    def for_size(cls, *, seed: int, size: int) -> "GenerateConfig":
        if size < 1:
            raise UserError(f"--size must be at least 1, not {size}")
        return cls(seed=seed, size=size, eval_size=max(MIN_EVAL_SIZE, size // EVAL_FRACTION))

    def split_size(self, split: str) -> int:
        return self.size if split == "train" else self.eval_size

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "GenerateConfig":
        return cls(**json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Example:
    """A dialogue of a split: its conversations as JSON (also what makes two dialogues the same) and meta."""

    conversations: str
    meta: dict[str, Any]

    def line(self, tools: str) -> str:
        """The JSONL line: the same text as json.dumps of {"tools", "conversations", "meta"}."""
        meta = json.dumps(self.meta, ensure_ascii=False)
        return f'{{"tools": {tools}, "conversations": {self.conversations}, "meta": {meta}}}\n'


def generate_splits(out: Path, *, seed: int, size: int) -> None:
    """Write each split's JSONL (`<split>.jsonl`) and generate.json into `out`; print per-split statistics."""
    config = GenerateConfig.for_size(seed=seed, size=size)
    with writing_into(out):
        out.mkdir(parents=True, exist_ok=True)
    splits = make_splits(config)
    with writing_into(out):
        for split, examples in splits.items():
            write_examples(out / f"{split}.jsonl", examples)
        config.save(out / CONFIG_FILE)
    console = Console()
    console.print(statistics(splits))
    console.print(f"wrote {', '.join(f'{split}.jsonl' for split in splits)} and {CONFIG_FILE} to {out}")


def write_examples(path: Path, examples: list[Example]) -> None:
    """`examples` as JSONL lines with the tools' descriptions."""
    tools = json.dumps(tool_descriptions(), ensure_ascii=False)
    path.write_text("".join(example.line(tools) for example in examples), encoding="utf-8", newline="\n")


@contextmanager
def writing_into(out: Path) -> Iterator[None]:
    """Turn a failure to write into `out` into a one-line UserError."""
    try:
        yield
    except OSError as err:
        raise UserError(f"cannot write the training data into {out}: {err.strerror} ({err.filename})") from None


def make_splits(config: GenerateConfig, more: int = 0) -> dict[str, list[Example]]:
    """Every split, and with `more` that many dialogues more drawn as the training split's are (`MORE`), after
    all of them: in no split, and leaving every split as it is without them."""
    rng = random.Random(config.seed)
    taken: set[str] = set()  # composed site names, each used once over all splits
    earlier: set[str] = set()  # conversations of the splits made so far
    splits: dict[str, list[Example]] = {}
    sizes = {split: config.split_size(split) for split in SPLITS} | ({MORE: more} if more else {})
    for split, size in sizes.items():
        lengthen = random.Random(f"{split}-stems-{config.seed}") if split in LENGTHENED else None
        maker = DialogueMaker(rng, held_out=split in HELD_OUT, taken=taken, lengthen=lengthen)
        examples: list[Example] = []
        while len(examples) < size:
            dialogue = maker.make()
            conversations = json.dumps(dialogue["conversations"], ensure_ascii=False)
            if conversations not in earlier:
                examples.append(Example(conversations, {**dialogue["meta"], "split": split}))
        earlier.update(example.conversations for example in examples)
        splits[split] = examples
    return splits


def statistics(splits: dict[str, list[Example]]) -> Table:
    """Per split: dialogues, each check's share of the checks named, each kind's share, the share with noise."""
    table = Table(title="training data")
    table.add_column("")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_row("dialogues", *(str(len(examples)) for examples in splits.values()))
    checks = {split: Counter(c for e in examples for c in e.meta["checks"]) for split, examples in splits.items()}
    for check in CHECKS:
        table.add_row(check, *(f"{counts[check] / max(1, counts.total()):.0%}" for counts in checks.values()))
    for kind in KIND_CARDS:
        shares = (sum(e.meta["kind"] == kind for e in examples) / len(examples) for examples in splits.values())
        table.add_row(kind, *(f"{share:.0%}" for share in shares))
    noisy = (sum(bool(e.meta["noise"]["ops"]) for e in examples) / len(examples) for examples in splits.values())
    table.add_row("with noise", *(f"{share:.0%}" for share in noisy))
    return table

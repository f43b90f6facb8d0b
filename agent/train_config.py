"""The configuration of a training run: a dataclass saved as JSON beside what the run writes."""

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal, get_args

from agent.errors import ConfigError

Method = Literal["full", "ptuning"]
OptimizerKind = Literal["adamw", "muon"]
CONFIG_FILE = "train_config.json"


@dataclass(frozen=True)
class TrainConfig:
    """What to train, on what, and how. Defaults are the seed notes' P-tuning v2 settings."""

    method: Method
    base: str
    data: str
    out: str
    pre_seq_len: int = 128
    prefix_projection: bool = False
    lr: float = 2e-2
    batch_size: int = 1
    grad_accum: int = 16
    max_steps: int = 3000
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int = 100
    eval_examples: int = 200
    save_every: int = 500
    quantize: int | None = None
    seed: int = 0
    tools_in_system: bool = True
    # Batches of similar length waste no padding, but where length follows the answer (a short head count's
    # verdict is the text that differs most), such batches hold one answer each: shuffle them plainly instead.
    by_length: bool = True
    # The batch size of a second source of examples that takes every other batch (agent/trainer.py); 0: none.
    alternate_batch_size: int = 0
    # Alternate examples learn through their tails only (agent/trainer.py `tail_loss`): their contexts run
    # without gradients, which makes a batch of examples that learn only their last answer far cheaper.
    alternate_tails_only: bool = False
    # AdamW, or Muon on the decoder layers' matrices and AdamW on the rest (agent/optimizer.py).
    optimizer: OptimizerKind = "adamw"

    def __post_init__(self) -> None:
        if self.method not in ("full", "ptuning"):
            raise ConfigError(f"method must be full or ptuning, not {self.method!r}")
        for name in ("pre_seq_len", "batch_size", "grad_accum", "max_steps", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, not {self.lr}")
        if self.optimizer not in get_args(OptimizerKind):
            raise ConfigError(f"optimizer must be adamw or muon, not {self.optimizer!r}")
        if self.quantize not in (None, 4, 8):
            raise ConfigError(f"quantize must be 4 or 8, not {self.quantize}")

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CONFIG_FILE
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path) -> "TrainConfig":
        path = directory / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read {path}: {err}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path} has unknown settings: {', '.join(unknown)}")
        return cls(**data)

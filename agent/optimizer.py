"""The optimizer of a training run: AdamW, or Muon on the decoder layers' matrices and AdamW on the rest.

Muon (torch.optim.Muon) orthogonalises each weight matrix's momentum before the step. It suits the 2-D
weights inside the decoder layers; embeddings, the output layer, norms, biases and a P-tuning prefix stay
with AdamW. Its step is scaled to match AdamW's update size (`match_rms_adamw`), so both share one learning
rate, weight decay and schedule. Imported by the trainer only when it runs: it imports torch.
"""

from collections.abc import Callable
from typing import Any

import torch

from agent.train_config import OptimizerKind


def is_layer_matrix(name: str, parameter: torch.Tensor) -> bool:
    """Whether Muon steps this parameter: a 2-D weight inside a decoder layer."""
    return parameter.ndim == 2 and ".layers." in name


def make_optimizer(
    named: dict[str, torch.Tensor], kind: OptimizerKind, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The `kind` optimizer over the `named` trainable parameters."""
    if kind == "adamw":
        return torch.optim.AdamW(list(named.values()), lr=lr, weight_decay=weight_decay)
    matrices = [p for name, p in named.items() if is_layer_matrix(name, p)]
    rest = [p for name, p in named.items() if not is_layer_matrix(name, p)]
    parts: list[torch.optim.Optimizer] = []
    if matrices:
        parts.append(torch.optim.Muon(matrices, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw"))
    if rest:
        parts.append(torch.optim.AdamW(rest, lr=lr, weight_decay=weight_decay))
    return Combined(parts)


class Combined(torch.optim.Optimizer):
    """Optimizers over disjoint parameters, stepped, scheduled and saved as one.

    Its `param_groups` are the parts' own group dicts, read anew each time (loading a state replaces a part's
    dicts), so a learning-rate scheduler's changes reach them.
    """

    def __init__(self, parts: list[torch.optim.Optimizer]) -> None:  # Optimizer.__init__ would copy the groups
        self.parts = parts
        self.defaults = parts[0].defaults
        self.state = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [group for part in self.parts for group in part.param_groups]

    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for part, state in zip(self.parts, state_dict["parts"], strict=True):
            part.load_state_dict(state)

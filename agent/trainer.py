"""The training loop, shared by full fine-tuning and P-tuning v2.

The loss is ChatGLM3's: the mean cross-entropy over the tokens the format module labels. Each batch runs the
shared head (the tools' system message, after the P-tuning virtual tokens if any) once, with gradients, and
the rest of its examples on top of it. A second source of examples (`alternate`) can take every other batch,
in batches of its own size: a skill the main data holds few examples of then gets whole steps of its own,
which mixing its examples into the main batches does not give (docs/default_model_history.md: recounts).
Checkpoints hold the trainable weights, the optimizer and the position in the seeded data order, so a resumed
run continues exactly where the interrupted one was.
"""

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from agent import kv, train_log
from agent.chatglm_format import IGNORE, Encoded
from agent.examples import Batch, batch_order, interleave, make_batch, shared_head
from agent.prompting import Prompting
from agent.tokenizer import TOKENIZER_FILE, GLMTokenizer
from agent.train_config import TrainConfig

CHECKPOINT_DIR = "checkpoint"
LOG_EVERY = 10


@dataclass
class Position:
    """Where training stands: optimizer steps done, and the next batch of the current epoch."""

    step: int = 0
    epoch: int = 0
    batch: int = 0


def with_head(model: Any, head: list[int]) -> tuple[Any, kv.KV]:
    """The base model (under any adapter) and the key/values of its virtual tokens and the shared head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base, kv.extend(base, kv.virtual(model), head)


def batch_loss(model: Any, head: list[int], batch: Batch) -> Any:
    """Summed cross-entropy of the batch's learned tokens, the shared head run once for all rows."""
    import torch

    base, past = with_head(model, head)
    device = next(base.parameters()).device
    rows = len(batch.input_ids)
    mask = torch.tensor(batch.mask, device=device)
    width = mask.shape[1]
    hidden = base.get_decoder()(
        input_ids=torch.tensor(batch.input_ids, device=device),
        attention_mask=torch.cat([mask.new_ones(rows, kv.length(past)), mask], dim=1),
        position_ids=(len(head) + torch.arange(width, device=device)).expand(rows, -1),
        past_key_values=kv.cache(past, rows),
    ).last_hidden_state
    return learned_loss(base, hidden, batch.labels)


def learned_loss(base: Any, hidden: Any, labels: list[list[int]]) -> Any:
    """Summed cross-entropy of the labelled tokens, each predicted from the hidden state before it; the
    output layer runs on the learned positions only (about a third of a dialogue's): the rest carry no loss."""
    import torch

    targets = torch.tensor(labels, device=hidden.device)[:, 1:]
    learned = targets != IGNORE
    logits = base.get_output_embeddings()(hidden[:, :-1][learned])
    return torch.nn.functional.cross_entropy(logits.float(), targets[learned], reduction="sum")


def tail_loss(model: Any, head: list[int], examples: list[Encoded], pad_id: int) -> Any:
    """`batch_loss` of examples that learn only their ending, their context run once without gradients.

    A row's context is everything after the shared head up to the token that predicts its first learned
    label; the rest is its tail. The contexts run as one right-padded batch under `no_grad`, and the tails
    on top of their keys and values, with gradients: the loss is the same, but only the tails' own
    computation (and the shared head's) learns, at a fraction of the cost when the tails are short — a
    recount's context is ~157 tokens, its report ~34 (docs/default_model_history.md: a cheaper recount phase).
    """
    import torch

    base, past = with_head(model, head)
    device = next(base.parameters()).device
    rests = [(example.input_ids[len(head) :], example.labels[len(head) :]) for example in examples]
    splits = [max(0, next(i for i, label in enumerate(labels) if label != IGNORE) - 1) for _, labels in rests]
    cuts = list(zip(rests, splits, strict=True))
    contexts = make_batch([Encoded(ids[:cut], labels[:cut]) for (ids, labels), cut in cuts], 0, pad_id)
    tails = make_batch([Encoded(ids[cut:], labels[cut:]) for (ids, labels), cut in cuts], 0, pad_id)
    rows, shared = len(examples), kv.length(past)
    context_mask = torch.tensor(contexts.mask, device=device, dtype=torch.long).reshape(rows, -1)
    seen = torch.cat([context_mask.new_ones(rows, shared), context_mask], dim=1)
    if context_mask.shape[1]:
        with torch.no_grad():
            output = base.get_decoder()(
                input_ids=torch.tensor(contexts.input_ids, device=device),
                attention_mask=seen,
                position_ids=(len(head) + torch.arange(context_mask.shape[1], device=device)).expand(rows, -1),
                past_key_values=kv.cache(past, rows),
                use_cache=True,
            )
        past = kv.join(past, [(k[:, :, shared:], v[:, :, shared:]) for k, v in kv.layers(output.past_key_values)])
    tail_mask = torch.tensor(tails.mask, device=device)
    width = tail_mask.shape[1]
    starts = len(head) + torch.tensor(splits, device=device)[:, None]
    hidden = base.get_decoder()(
        input_ids=torch.tensor(tails.input_ids, device=device),
        attention_mask=torch.cat([seen, tail_mask], dim=1),
        position_ids=starts + torch.arange(width, device=device),
        past_key_values=kv.cache(past, rows),
    ).last_hidden_state
    return learned_loss(base, hidden, tails.labels)


def mean_loss(model: Any, head: list[int], examples: list[Encoded], pad_id: int, batch_size: int) -> float:
    """Mean loss per learned token over `examples`, without gradients; batched by length, which pads
    less (a dev split in 0.6x the time)."""
    import torch

    by_length = sorted(examples, key=lambda example: len(example.input_ids))
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(by_length), batch_size):
            batch = make_batch(by_length[start : start + batch_size], len(head), pad_id)
            total += float(batch_loss(model, head, batch))
            tokens += batch.tokens
    return total / max(tokens, 1)


def trainable(model: Any) -> dict[str, Any]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def prepare_model(config: TrainConfig, base: Any) -> Any:
    """The model to train: the base itself (full), or the frozen base under a P-tuning v2 prefix."""
    if config.method == "full":
        return base
    import torch
    from peft import PrefixTuningConfig, get_peft_model, prepare_model_for_kbit_training

    if config.quantize:
        # Prefix tuning refuses gradient checkpointing, so it stays off.
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    base.requires_grad_(False)
    torch.manual_seed(config.seed)  # the prefix starts from values the run's seed decides
    prefix = PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=config.pre_seq_len, prefix_projection=config.prefix_projection
    )
    return get_peft_model(base, prefix)


class Trainer:
    """Runs one training configuration to its last step, writing log, curve, checkpoints and result."""

    def __init__(
        self,
        config: TrainConfig,
        model: Any,
        tokenizer: GLMTokenizer,
        train: list[Encoded],
        dev: list[Encoded],
        console: Console | None = None,
        alternate: list[Encoded] | None = None,
    ) -> None:
        import torch

        from agent.optimizer import make_optimizer

        self.config, self.model, self.tokenizer = config, model, tokenizer
        self.train, self.alternate, self.dev = train, alternate or [], dev[: config.eval_examples]
        if self.alternate and config.alternate_batch_size < 1:
            raise ValueError("alternating examples need an alternate_batch_size of at least 1")
        self.examples = self.train + self.alternate
        self.out = Path(config.out)
        self.console = console or Console()
        self.head = shared_head(self.examples + self.dev)
        named = trainable(model)
        self.parameters = list(named.values())
        if not self.parameters:
            raise ValueError("the model has no trainable parameters")
        self.optimizer = make_optimizer(named, config.optimizer, config.lr, config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.position = Position()

    def _lr_factor(self, step: int) -> float:
        warmup, total = self.config.warmup_steps, self.config.max_steps
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    def batches(self, epoch: int) -> list[list[int]]:
        """Indices into `examples` of each batch of one epoch: the training examples' batches, alternating
        with the alternate examples' while both last."""
        config = self.config
        batches = batch_order(self.train, config.batch_size, config.seed, epoch, config.by_length)
        if not self.alternate:
            return batches
        offset = len(self.train)
        others = batch_order(self.alternate, config.alternate_batch_size, config.seed, epoch, config.by_length)
        return interleave(batches, [[offset + i for i in batch] for batch in others])

    # --- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        import torch
        from safetensors.torch import save_file

        directory = self.out / CHECKPOINT_DIR
        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {n: p.detach().contiguous().cpu() for n, p in trainable(self.model).items()},
            directory / "weights.safetensors",
        )
        torch.save(
            {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
            directory / "optimizer.pt",
        )
        (directory / "position.json").write_text(json.dumps(self.position.__dict__) + "\n", encoding="utf-8")
        return directory

    def resume(self) -> bool:
        """Continue from the checkpoint in `out`, if there is one."""
        import torch
        from safetensors.torch import load_file

        directory = self.out / CHECKPOINT_DIR
        if not (directory / "position.json").is_file():
            return False
        weights = load_file(directory / "weights.safetensors")
        with torch.no_grad():
            for name, parameter in trainable(self.model).items():
                parameter.copy_(weights[name])
        states = torch.load(directory / "optimizer.pt", weights_only=True)
        self.optimizer.load_state_dict(states["optimizer"])
        self.scheduler.load_state_dict(states["scheduler"])
        self.position = Position(**json.loads((directory / "position.json").read_text(encoding="utf-8")))
        return True

    def save_model(self) -> Path:
        """The result: a model folder (full) or a peft adapter folder (ptuning), beside the run's config."""
        self.model.save_pretrained(self.out)
        Prompting(tools_in_system=self.config.tools_in_system).save(self.out)
        if self.config.method == "full":
            shutil.copy(self.tokenizer.model_file, self.out / TOKENIZER_FILE)
        return self.out

    # --- the loop ----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train to `max_steps`; returns the last log record."""
        import torch

        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        config.save(self.out)
        train_log.truncate_after(self.out, self.position.step)  # a fresh run starts an empty log
        torch.manual_seed(config.seed)
        self.model.train()
        last: dict[str, Any] = {}
        columns = (TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"))
        with Progress(*columns, TimeRemainingColumn(), console=self.console, transient=False) as progress:
            task = progress.add_task("train", total=config.max_steps, completed=self.position.step, status="")
            window = {"loss": 0.0, "tokens": 0, "examples": 0, "seconds": 0.0}
            while self.position.step < config.max_steps:
                batches = self.batches(self.position.epoch)
                while self.position.batch < len(batches) and self.position.step < config.max_steps:
                    group = batches[self.position.batch : self.position.batch + config.grad_accum]
                    started = time.perf_counter()
                    loss, tokens = self._step(group)
                    self.position.batch += len(group)
                    self.position.step += 1
                    window["loss"] += loss
                    window["tokens"] += tokens
                    window["examples"] += sum(map(len, group))
                    window["seconds"] += time.perf_counter() - started
                    last = self._after_step(window, progress, task) or last
                if self.position.batch >= len(batches):
                    self.position = Position(self.position.step, self.position.epoch + 1, 0)
        self.model.eval()
        train_log.plot(self.out)
        return last

    def _step(self, group: list[list[int]]) -> tuple[float, int]:
        """One optimizer step over `group` (grad_accum batches of indices into `examples`); returns summed
        loss and learned tokens."""
        import torch

        pad = self.tokenizer.pad_id
        rows = [[self.examples[i] for i in ids] for ids in group]
        batches = [make_batch(examples, len(self.head), pad) for examples in rows]
        tokens = sum(batch.tokens for batch in batches)
        total = 0.0
        for ids, examples, batch in zip(group, rows, batches, strict=True):
            if self.config.alternate_tails_only and ids[0] >= len(self.train):
                loss = tail_loss(self.model, self.head, examples, pad)
            else:
                loss = batch_loss(self.model, self.head, batch)
            (loss / tokens).backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, tokens

    def _after_step(self, window: dict[str, float], progress: Progress, task: Any) -> dict[str, Any] | None:
        step = self.position.step
        config = self.config
        record = None
        if step % LOG_EVERY == 0 or step == config.max_steps:
            record = {
                "step": step,
                "epoch": self.position.epoch,
                "loss": window["loss"] / max(window["tokens"], 1),
                "lr": self.scheduler.get_last_lr()[0],
                "examples_per_s": window["examples"] / max(window["seconds"], 1e-9),
                "tokens_per_s": window["tokens"] / max(window["seconds"], 1e-9),
            }
            window.update(loss=0.0, tokens=0, examples=0, seconds=0.0)
        if step % config.eval_every == 0 or step == config.max_steps:
            self.model.eval()
            dev_loss = mean_loss(self.model, self.head, self.dev, self.tokenizer.pad_id, max(config.batch_size, 8))
            self.model.train()
            record = {**(record or {"step": step, "epoch": self.position.epoch}), "dev_loss": dev_loss}
        if record is not None:
            train_log.append(self.out, record)
            if "dev_loss" in record and step < config.max_steps:
                train_log.plot(self.out)
            status = f"loss {record.get('loss', float('nan')):.4f}"
            if "examples_per_s" in record:
                status += f"  {record['examples_per_s']:.1f} ex/s"
            if "dev_loss" in record:
                status += f"  dev {record['dev_loss']:.4f}"
            progress.update(task, status=status)
        if step % config.save_every == 0:
            self.save_checkpoint()
        progress.update(task, completed=step)
        return record

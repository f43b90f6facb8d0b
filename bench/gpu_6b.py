"""The 6B GPU path: ChatGLM3-6B's shape in 4-bit NF4 under a 128-token P-tuning v2 prefix, bf16 beside it.

    python bench/gpu_6b.py          # on a machine with a CUDA GPU; without one it says so and exits 0

No weights can be downloaded, so the model has ChatGLM3-6B's shape (its config.json, converted to native GLM)
and random weights, made on the device in bf16 and saved once to a temporary folder; speed and memory do not
depend on the weights' values. From that folder, loaded as `--quantize 4` / `--dtype bf16` load a model:
- training: the 4-bit NF4 base under a 128-token prefix with the seed notes' settings (source 64 + target 64
  tokens, batch 1 × grad-accum 16) through the project's Trainer: samples/s of its last logging window and
  the GPU's peak memory. The seed notes report 3.16 samples/s for ChatGLM-6B P-tuning in 4-bit; the target
  is at least 5× that on an H100-class GPU, with at most 10 GB of GPU memory;
- inference in bf16 and in 4-bit, each under the prefix just trained: prefill tokens/s (a whole first prompt),
  decode tokens/s, and the latency of a three-step inspection turn (call, call, report) of a generated
  dialogue with the tools in the system message, as ChatGLM3 is prompted; each step generates as many tokens
  as the dialogue's message holds (random weights rarely stop by themselves; the tokens made are recorded).
"""

import gc
import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import guarded, machine, parser, percentiles, save, show, training_speed
from rich.console import Console

from agent.chatglm_format import IGNORE, Encoded, Message
from agent.tokenizer import TOKENIZER_FILE, GLMTokenizer
from tools.context import REPO

SEED_SAMPLES_PER_S = 3.16  # ChatGLM-6B P-tuning v2, 4-bit, in the seed notes
TARGET_SPEEDUP = 5
TARGET_MEMORY_GB = 10
SOURCE, TARGET = 64, 64
Step = tuple[list[Message], int]  # a model step's prompt messages and how many tokens it generates


def random_model(chatglm: Path, folder: Path, device: str) -> None:
    """ChatGLM3's network at the shape `chatglm/config.json` gives, random bf16 weights, saved to `folder`."""
    import torch
    from transformers import AutoModelForCausalLM

    from agent.convert import glm_config, read_chatglm_config

    config = glm_config(read_chatglm_config(chatglm))
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    shutil.copy(chatglm / TOKENIZER_FILE, folder / TOKENIZER_FILE)


def seed_shaped(tokenizer: GLMTokenizer, count: int) -> list[Encoded]:
    """Examples shaped as the seed notes' P-tuning data: prefix, 64 source tokens, 64 learned target tokens, eos."""
    rng = random.Random(0)
    examples = []
    for _ in range(count):
        source, target = ([rng.randrange(3, tokenizer.n_pieces) for _ in range(n)] for n in (SOURCE, TARGET))
        head = [*tokenizer.prefix, *source]
        examples.append(Encoded([*head, *target, tokenizer.eos_id], [IGNORE] * len(head) + [*target, tokenizer.eos_id]))
    return examples


def inspection_turn(tokenizer: GLMTokenizer) -> list[Step]:
    """The three model steps of the first generated test_unseen dialogue that is one whole inspection turn."""
    from agent.chatglm_format import dialogue_messages, encode_message, parse_dialogue
    from tools.catalog import tool_descriptions
    from training_data.generate import GenerateConfig, make_splits

    tools = json.dumps(tool_descriptions(), ensure_ascii=False)
    turn = ["system", "user", "assistant", "observation", "assistant", "observation", "assistant"]
    for example in make_splits(GenerateConfig.for_size(seed=0, size=1))["test_unseen"]:
        messages = dialogue_messages(parse_dialogue(example.line(tools)))
        if [message.role for message in messages] == turn:
            return [(messages[:i], len(encode_message(tokenizer, m))) for i, m in enumerate(messages) if i in (2, 4, 6)]
    raise RuntimeError("no generated dialogue is a single inspection turn")


def memory_gb(device: str) -> dict[str, float] | None:
    """GB of GPU memory allocated now, at most since the last reset, and at most reserved; None on the CPU."""
    import torch

    if device != "cuda":
        return None
    return {
        "allocated": torch.cuda.memory_allocated() / 1e9,
        "peak": torch.cuda.max_memory_allocated() / 1e9,
        "peak_reserved": torch.cuda.max_memory_reserved() / 1e9,
    }


def reset_memory(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train(folder: Path, tokenizer: GLMTokenizer, device: str, steps: int, out: Path) -> dict[str, Any]:
    """Train a 128-token prefix on the 4-bit base for `steps` steps; the prefix is saved to `out`."""
    from agent.loading import LoadOptions, load_model
    from agent.train_config import TrainConfig
    from agent.trainer import Trainer, prepare_model

    config = TrainConfig(
        method="ptuning",
        base=str(folder),
        data="seed-shaped random tokens",
        out=str(out),
        max_steps=steps,
        eval_every=steps,
        eval_examples=2,
        save_every=steps,
        quantize=4,
    )
    reset_memory(device)
    model = prepare_model(config, load_model(folder, LoadOptions(device=device, quantize=4)))
    loaded = memory_gb(device)
    trainer = Trainer(
        config, model, tokenizer, seed_shaped(tokenizer, steps * config.grad_accum), seed_shaped(tokenizer, 2)
    )
    speed = training_speed(trainer)
    trainer.save_model()
    return {**speed, "memory_loaded_gb": loaded, "memory_gb": memory_gb(device)}


def infer(folder: Path, prefix: Path, options: dict[str, Any], turn: list[Step], turns: int) -> dict[str, Any]:
    """Prefill and decode speed, and the inspection turn's latency, with the model loaded as `options` say."""
    from agent.glm_backend import GLMBackend
    from agent.loading import LoadOptions, load_model

    device = options["device"]
    reset_memory(device)
    tokenizer = GLMTokenizer.load(folder)
    model = load_model(folder, LoadOptions(prefix=prefix, **options))
    GLMBackend(model, tokenizer).generate([turn[0][0]], 4)  # warm-up on a backend of its own
    backend = GLMBackend(model, tokenizer)
    [first] = backend.generate([turn[0][0]], turn[0][1])  # its head (system message) not yet cached
    seconds, generations = [], []
    for _ in range(turns):
        started = time.perf_counter()
        generations += [backend.generate([messages], new)[0] for messages, new in turn]
        seconds.append(time.perf_counter() - started)
    decoded = sum(len(g.token_ids) for g in generations)
    return {
        "prompt_tokens": [g.prompt_tokens for g in generations[: len(turn)]],
        "new_tokens": [len(g.token_ids) for g in generations[: len(turn)]],
        "prefill_tokens_per_s": first.prompt_tokens / first.prefill_s,
        "decode_tokens_per_s": decoded / sum(g.decode_s for g in generations),
        "turn": percentiles(seconds),
        "memory_gb": memory_gb(device),
    }


def show_training(training: dict[str, Any], device: str) -> None:
    target = TARGET_SPEEDUP * SEED_SAMPLES_PER_S
    speed, memory = training["samples_per_s"], _peak(training["memory_gb"])
    first, last = training["window"]
    show(
        f"P-tuning v2 (prefix 128) on ChatGLM3-6B's shape in 4-bit NF4, on {device}",
        ("what", "value", "target", "met"),
        [
            (
                f"samples/s (steps {first}–{last})",
                speed,
                f"≥ {target:.1f} (5 × {SEED_SAMPLES_PER_S})",
                _met(speed >= target),
            ),
            (f"× the seed notes' {SEED_SAMPLES_PER_S} samples/s", f"{speed / SEED_SAMPLES_PER_S:.2f}", "", ""),
            (
                "peak GPU memory (loading included), GB",
                _gb(memory),
                f"≤ {TARGET_MEMORY_GB}",
                _met(None if memory is None else memory <= TARGET_MEMORY_GB),
            ),
            ("GPU memory allocated with the model loaded, GB", _gb(_now(training["memory_loaded_gb"])), "", ""),
        ],
    )


def show_inference(inference: dict[str, dict[str, Any]]) -> None:
    names = list(inference)

    def row(label: str, cell: Callable[[dict[str, Any]], object]) -> tuple[object, ...]:
        return (label, *(cell(inference[name]) for name in names))

    show(
        "inference under the trained prefix: a three-step inspection turn",
        ("what", *names),
        [
            row("prompt tokens per step", lambda r: r["prompt_tokens"]),
            row("tokens generated per step", lambda r: r["new_tokens"]),
            row("prefill tokens/s (first prompt, uncached)", lambda r: f"{r['prefill_tokens_per_s']:.0f}"),
            row("decode tokens/s", lambda r: f"{r['decode_tokens_per_s']:.1f}"),
            row("turn latency p50 / p95 ms", lambda r: f"{r['turn']['p50_ms']} / {r['turn']['p95_ms']}"),
            row("peak GPU memory (loading included), GB", lambda r: _gb(_peak(r["memory_gb"]))),
        ],
    )


def _peak(memory: dict[str, float] | None) -> float | None:
    return None if memory is None else memory["peak"]


def _now(memory: dict[str, float] | None) -> float | None:
    return None if memory is None else memory["allocated"]


def _gb(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _met(met: bool | None) -> str:
    return "–" if met is None else "yes" if met else "no"


def main() -> None:
    parser_ = parser(__doc__, "gpu_6b")
    chatglm3 = REPO.parent / "shared" / "chatglm3"
    parser_.add_argument("--chatglm", type=Path, default=chatglm3, help="ChatGLM3's config.json and tokenizer.model")
    parser_.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="auto: CUDA, else skip")
    parser_.add_argument("--steps", type=int, default=20, help="training steps (16 samples each)")
    parser_.add_argument("--turns", type=int, default=5, help="timed inspection turns per precision")
    parser_.add_argument("--work", type=Path, help="folder for the random checkpoint (12.5 GB); default: temporary")
    arguments = parser_.parse_args()

    import torch

    from agent.loading import resolve_device

    where = machine()
    if arguments.device == "auto" and not torch.cuda.is_available():
        Console().print("skipped: no CUDA GPU here; run `python bench/gpu_6b.py` on a machine with one")
        save({"machine": where, "skipped": "no CUDA GPU"}, arguments.out)
        return
    device = resolve_device("cuda" if arguments.device == "auto" else arguments.device)
    with tempfile.TemporaryDirectory(dir=arguments.work) as temporary:
        folder, prefix = Path(temporary) / "model", Path(temporary) / "prefix"
        random_model(arguments.chatglm, folder, device)
        tokenizer = GLMTokenizer.load(folder)
        training = train(folder, tokenizer, device, arguments.steps, prefix)
        turn = inspection_turn(tokenizer)
        inference = {
            name: infer(folder, prefix, {"device": device, **options}, turn, arguments.turns)
            for name, options in (("bf16", {"dtype": "bf16"}), ("4-bit NF4", {"quantize": 4}))
        }
    show_training(training, where["gpu"] or device)
    show_inference(inference)
    report = {
        "machine": where,
        "chatglm_config": str(arguments.chatglm / "config.json"),
        "training": {
            **training,
            "target_samples_per_s": TARGET_SPEEDUP * SEED_SAMPLES_PER_S,
            "target_memory_gb": TARGET_MEMORY_GB,
        },
        "inference": inference,
    }
    save(report, arguments.out)


if __name__ == "__main__":
    guarded(main)

"""P-tuning v2 cost on this CPU: training samples/s and peak memory of a 128-token prefix on the small default.

    .venv/bin/python bench/ptuning_cpu.py --steps 30

The frozen default model gets a P-tuning v2 prefix (peft prefix tuning) and trains with the seed notes'
settings (pre_seq_len 128, batch 1 × grad-accum 16) through the project's Trainer, on the first dialogues of
the train split, prompted as the model was trained (agent/prompting.py). Samples/s is the Trainer's own
count over its last logging window of 10 steps (the warm-up left out from 20 steps on). Memory is the
process's resident set once model and data are loaded, and its peak.
"""

import resource
import tempfile
from pathlib import Path

from common import guarded, machine, parser, save, show, split_file, training_speed

MIB = 2**20


def first_dialogues(path: Path, count: int, folder: Path) -> Path:
    """The first `count` dialogues of a split in a file of their own: only those are encoded."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:count]
    trimmed = folder / path.name
    trimmed.write_text("".join(lines), encoding="utf-8")
    return trimmed


def main() -> None:
    parser_ = parser(
        __doc__, "ptuning_cpu", model="the frozen base model folder", data="folder with train.jsonl and dev.jsonl"
    )
    parser_.add_argument("--steps", type=int, default=30, help="optimizer steps to time")
    parser_.add_argument("--pre-seq-len", type=int, default=128, help="virtual prefix tokens")
    parser_.add_argument("--batch-size", type=int, default=1, help="dialogues per batch")
    parser_.add_argument("--grad-accum", type=int, default=16, help="batches per optimizer step")
    arguments = parser_.parse_args()

    import psutil

    from agent.examples import load_examples
    from agent.loading import LoadOptions, load_model
    from agent.prompting import Prompting
    from agent.tokenizer import GLMTokenizer
    from agent.train_config import TrainConfig
    from agent.trainer import Trainer, prepare_model

    where = machine()
    samples = arguments.steps * arguments.batch_size * arguments.grad_accum
    tools_in_system = Prompting.of(arguments.model).tools_in_system
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        config = TrainConfig(
            method="ptuning",
            base=str(arguments.model),
            data=str(arguments.data),
            out=str(work / "prefix"),
            pre_seq_len=arguments.pre_seq_len,
            batch_size=arguments.batch_size,
            grad_accum=arguments.grad_accum,
            max_steps=arguments.steps,
            eval_every=arguments.steps,
            eval_examples=2,
            save_every=arguments.steps,
            tools_in_system=tools_in_system,
        )
        model = prepare_model(config, load_model(arguments.model, LoadOptions(device="cpu")))
        tokenizer = GLMTokenizer.load(arguments.model)
        context = model.get_base_model().config.max_position_embeddings
        train, dev = (
            load_examples(
                first_dialogues(split_file(arguments.data, split), count, work), tokenizer, context, tools_in_system
            )
            for split, count in (("train", samples), ("dev", config.eval_examples))
        )
        loaded = psutil.Process().memory_info().rss
        speed = training_speed(Trainer(config, model, tokenizer, train, dev))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    first, last = speed["window"]
    show(
        f"P-tuning v2 on this CPU: {arguments.model}",
        ("what", "value"),
        [
            (
                "prefix / batch × grad-accum",
                f"{arguments.pre_seq_len} / {arguments.batch_size} × {arguments.grad_accum}",
            ),
            ("parameters: trainable / frozen", f"{trainable:,} / {frozen:,}"),
            (f"samples/s (steps {first}–{last})", speed["samples_per_s"]),
            (f"learned tokens/s (steps {first}–{last})", speed["tokens_per_s"]),
            (f"wall seconds for {arguments.steps} steps (evaluation included)", speed["wall_seconds"]),
            ("RSS with model and data loaded", f"{loaded / MIB:.0f} MiB"),
            ("peak RSS", f"{peak / MIB:.0f} MiB"),
        ],
    )
    report = {
        "machine": where,
        "model": str(arguments.model),
        "config": {
            "pre_seq_len": arguments.pre_seq_len,
            "batch_size": arguments.batch_size,
            "grad_accum": arguments.grad_accum,
        },
        "parameters": {"trainable": trainable, "frozen": frozen},
        **speed,
        "rss_loaded_mib": round(loaded / MIB, 1),
        "peak_rss_mib": round(peak / MIB, 1),
    }
    save(report, arguments.out)


if __name__ == "__main__":
    guarded(main)

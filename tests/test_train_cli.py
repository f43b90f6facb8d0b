"""`inspector train ptuning` end to end on a tiny GLM: outputs, reload and generation, resume, bad input."""

import json
import shutil
import sys

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import ConfigError, UserError
from agent.loading import LoadOptions, load_model
from agent.train_config import TrainConfig
from tests.glm_tiny import tiny_glm
from tests.test_trainer import dialogues

torch = pytest.importorskip("torch")

CPU = LoadOptions(device="cpu")
KNOBS = ["--pre-seq-len", "4", "--lr", "5e-2", "--batch-size", "4", "--grad-accum", "2", "--max-steps", "6"]
KNOBS += ["--eval-every", "3", "--save-every", "2", "--seed", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def base(small_tokenizer, tmp_path_factory):
    """A tiny native GLM folder with its tokenizer, as `inspector model convert-chatglm3` writes one."""
    folder = tmp_path_factory.mktemp("base")
    tiny_glm(small_tokenizer.vocab_size, seed=0, context=512).save_pretrained(folder)
    shutil.copy(small_tokenizer.model_file, folder / "tokenizer.model")
    return folder


def write_split(folder, split, items):
    folder.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(item, ensure_ascii=False) if isinstance(item, dict) else item for item in items)
    (folder / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_split(folder, "train", dialogues(32))
    write_split(folder, "dev", dialogues(8, offset=100))
    return folder


def train(base, data, out, *extra):
    args = ["train", "ptuning", "--base", str(base), "--data", str(data), "--out", str(out), *KNOBS, *extra]
    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


def prefix_weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def test_trains_a_prefix_end_to_end_and_it_generates(base, data, small_tokenizer, tmp_path):
    from agent.chatglm_format import Message
    from agent.glm_backend import GLMBackend

    base_files = {path.name: path.read_bytes() for path in base.iterdir()}
    result = train(base, data, tmp_path / "out")

    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    for name in ("adapter_config.json", "adapter_model.safetensors", "train_config.json", "train_log.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert {path.name: path.read_bytes() for path in base.iterdir()} == base_files
    assert list(prefix_weights(out)) == ["prompt_embeddings"]
    config = TrainConfig.load(out)
    assert (config.method, config.pre_seq_len, config.max_steps, config.lr) == ("ptuning", 4, 6, 5e-2)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "dev_loss" in r] == [3, 6] and log[-1]["step"] == 6
    assert "dev loss" in result.output and "examples/s" in result.output and str(out) in result.output

    model = load_model(base, LoadOptions(device="cpu", prefix=out))
    backend = GLMBackend(model, small_tokenizer)
    [generation] = backend.generate([[Message("user", "查查济南人数")]], max_new_tokens=5)
    assert backend.virtual_tokens == 4 and generation.prompt_tokens > 0 and generation.token_ids


def test_only_the_prefix_trains_and_reloads_exactly(base, data, tmp_path, monkeypatch):
    from agent import kv
    from agent.trainer import Trainer

    trained = []
    run = Trainer.run
    monkeypatch.setattr(Trainer, "run", lambda self: trained.append(self.model) or run(self))

    assert train(base, data, tmp_path / "out").exit_code == 0

    [model] = trained
    assert {name for name, p in model.named_parameters() if p.requires_grad} == {
        "prompt_encoder.default.embedding.weight"
    }
    for (name, weight), (_, original) in zip(
        model.get_base_model().named_parameters(), load_model(base, CPU).named_parameters(), strict=True
    ):
        assert torch.equal(weight, original), name
    reloaded = load_model(base, LoadOptions(device="cpu", prefix=tmp_path / "out"))
    with torch.no_grad():
        for (key, value), (key_again, value_again) in zip(kv.virtual(model.eval()), kv.virtual(reloaded), strict=True):
            assert torch.equal(key, key_again) and torch.equal(value, value_again)


def test_an_interrupted_run_resumes_exactly(base, data, tmp_path, monkeypatch):
    from agent.trainer import Trainer

    assert train(base, data, tmp_path / "straight").exit_code == 0
    step = Trainer._step

    def interrupted_at_step_5(self, group):
        if self.position.step == 4:
            raise KeyboardInterrupt
        return step(self, group)

    monkeypatch.setattr(Trainer, "_step", interrupted_at_step_5)
    assert train(base, data, tmp_path / "out").exit_code == 130  # Ctrl-C
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
    monkeypatch.setattr(Trainer, "_step", step)

    result = train(base, data, tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert "at step 4" in result.output
    assert torch.equal(
        prefix_weights(tmp_path / "out")["prompt_embeddings"],
        prefix_weights(tmp_path / "straight")["prompt_embeddings"],
    )
    steps = [json.loads(line)["step"] for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [3, 6]


def test_resuming_with_other_settings_is_refused_and_no_resume_starts_over(base, data, tmp_path):
    from agent.trainer import CHECKPOINT_DIR

    out = tmp_path / "out"
    assert train(base, data, out).exit_code == 0

    result = train(base, data, out, "--pre-seq-len", "8")
    assert isinstance(result.exception, ConfigError)
    assert "another run (pre_seq_len 4 → 8)" in str(result.exception)

    result = train(base, data, out, "--pre-seq-len", "8", "--no-resume", "--max-steps", "1", "--save-every", "5")
    assert result.exit_code == 0, result.output
    assert not (out / CHECKPOINT_DIR).exists()
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [1]
    assert prefix_weights(out)["prompt_embeddings"].shape[0] == 8

    result = train(base, data, tmp_path / "new", "--resume")
    assert isinstance(result.exception, ConfigError) and "no checkpoint to continue from" in str(result.exception)


def test_a_malformed_line_is_named_and_nothing_trains(base, data, tmp_path):
    bad = tmp_path / "bad"
    write_split(bad, "train", [*dialogues(2), '{"conversations": [{"role": "user"'])
    shutil.copy(data / "dev.jsonl", bad / "dev.jsonl")

    result = train(base, bad, tmp_path / "out")

    assert isinstance(result.exception, UserError)
    assert f"{bad / 'train.jsonl'}:3: not a dialogue" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_a_dialogue_longer_than_the_context_is_refused(base, data, tmp_path):
    long = dialogues(2)
    long[1]["conversations"][0]["content"] = "济南" * 600
    bad = tmp_path / "bad"
    write_split(bad, "train", long)
    shutil.copy(data / "dev.jsonl", bad / "dev.jsonl")

    result = train(base, bad, tmp_path / "out")

    assert isinstance(result.exception, UserError)
    assert "dialogue 2 is" in str(result.exception) and "longer than the model's context of 512" in str(
        result.exception
    )


def test_missing_files_are_named(base, data, tmp_path):
    broken = shutil.copytree(base, tmp_path / "base")
    (broken / "tokenizer.model").unlink()
    result = train(broken, data, tmp_path / "out")
    assert isinstance(result.exception, ConfigError) and "lacks tokenizer.model" in str(result.exception)

    (broken / "model.safetensors").unlink()
    result = train(broken, data, tmp_path / "out")
    assert isinstance(result.exception, ConfigError) and "lacks model.safetensors" in str(result.exception)

    half = tmp_path / "half"
    write_split(half, "train", dialogues(2))
    result = train(base, half, tmp_path / "out")
    assert isinstance(result.exception, ConfigError) and f"{half} lacks dev.jsonl" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_quantize_4_trains_on_the_cpu(base, data, tmp_path):
    result = train(base, data, tmp_path / "out", "--quantize", "4", "--max-steps", "2")

    assert result.exit_code == 0, result.output
    assert TrainConfig.load(tmp_path / "out").quantize == 4
    model = load_model(base, LoadOptions(device="cpu", quantize=4, prefix=tmp_path / "out"))
    assert type(model.get_base_model().model.layers[0].mlp.gate_up_proj).__name__ == "Linear4bit"


def test_quantize_without_bitsandbytes_is_a_clear_error(base, data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail

    result = train(base, data, tmp_path / "out", "--quantize", "4")

    assert isinstance(result.exception, ConfigError)
    assert "--quantize 4 is unavailable: bitsandbytes does not import" in str(result.exception)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--quantize", "3", "quantize must be 4 or 8"), ("--device", "tpu", "device must be one of auto, cpu, cuda")],
)
def test_bad_options_are_refused(base, data, tmp_path, option, value, message):
    result = train(base, data, tmp_path / "out", option, value)

    assert isinstance(result.exception, ConfigError) and message in str(result.exception)

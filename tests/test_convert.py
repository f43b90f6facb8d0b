"""ChatGLM3 → native GLM conversion, checked against logits ChatGLM3's own code computed."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from agent.cli import app
from agent.convert import ConversionRecord, convert_chatglm3, convert_state_dict, glm_config, read_weights
from agent.errors import ConfigError
from agent.loading import prepare_transformers

SHARED = Path(__file__).resolve().parents[2] / "shared"
TINY = SHARED / "chatglm3-tiny"
CHATGLM3_6B = SHARED / "chatglm3"
TOKENIZER = CHATGLM3_6B / "tokenizer.model"

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason=f"test data {TINY} is missing")


def tiny_config() -> dict:
    return json.loads((TINY / "config.json").read_text())


def tiny_state() -> dict[str, torch.Tensor]:
    return read_weights(sorted(TINY.glob("pytorch_model-*.bin")))


def reference() -> tuple[torch.Tensor, torch.Tensor]:
    data = json.loads((TINY / "reference_logits.json").read_text())
    return torch.tensor(data["input_ids"]), torch.tensor(data["logits"])


def load_native(model_dir: Path):
    prepare_transformers()
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def native_logits(model_dir: Path, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_native(model_dir)(input_ids).logits


def chatglm3_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Tensor shapes ChatGLM3's own modeling code creates for `config` (its state dict's keys)."""
    hidden, ffn, head = config["hidden_size"], config["ffn_hidden_size"], config["kv_channels"]
    qkv = (config["num_attention_heads"] + 2 * config["multi_query_group_num"]) * head
    shapes = {
        "transformer.embedding.word_embeddings.weight": (config["padded_vocab_size"], hidden),
        "transformer.rotary_pos_emb.inv_freq": (head // 4,),
        "transformer.encoder.final_layernorm.weight": (hidden,),
        "transformer.output_layer.weight": (config["padded_vocab_size"], hidden),
    }
    for i in range(config["num_layers"]):
        layer = f"transformer.encoder.layers.{i}."
        shapes |= {
            layer + "input_layernorm.weight": (hidden,),
            layer + "self_attention.query_key_value.weight": (qkv, hidden),
            layer + "self_attention.query_key_value.bias": (qkv,),
            layer + "self_attention.dense.weight": (hidden, config["num_attention_heads"] * head),
            layer + "post_attention_layernorm.weight": (hidden,),
            layer + "mlp.dense_h_to_4h.weight": (2 * ffn, hidden),
            layer + "mlp.dense_4h_to_h.weight": (hidden, ffn),
        }
    return shapes


def write_checkpoint(folder: Path, config: dict, state: dict[str, torch.Tensor], layout: str) -> Path:
    """A ChatGLM3 checkpoint in `folder`: one file or two shards with an index, .bin or .safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    kind, sharding = layout.split("-")
    suffix, stem = (".bin", "pytorch_model") if kind == "bin" else (".safetensors", "model")

    def save(tensors: dict[str, torch.Tensor], name: str) -> None:
        if kind == "bin":
            torch.save(tensors, folder / name)
        else:
            save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, folder / name)

    if sharding == "single":
        save(state, stem + suffix)
        return folder
    keys = sorted(state)
    shards = {f"{stem}-0000{n}-of-00002{suffix}": keys[n - 1 :: 2] for n in (1, 2)}
    for name, shard_keys in shards.items():
        save({key: state[key] for key in shard_keys}, name)
    weight_map = {key: name for name, shard_keys in shards.items() for key in shard_keys}
    (folder / f"{stem}{suffix}.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


def wide_vocab_checkpoint(folder: Path) -> Path:
    """A small random ChatGLM3 checkpoint whose embedding covers the real tokenizer (65024 rows)."""
    config = tiny_config() | {
        "padded_vocab_size": 65024,
        "hidden_size": 8,
        "ffn_hidden_size": 8,
        "kv_channels": 4,
        "num_attention_heads": 2,
        "multi_query_group_num": 1,
    }
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=generator) for key, shape in chatglm3_shapes(config).items()}
    return write_checkpoint(folder, config, state, "safetensors-single")


def test_converted_tiny_checkpoint_reproduces_chatglm3_logits(tmp_path):
    record = convert_chatglm3(TINY, tmp_path / "glm")

    input_ids, expected = reference()
    assert (native_logits(tmp_path / "glm", input_ids) - expected).abs().max() <= 1e-4
    names = {path.name for path in (tmp_path / "glm").iterdir()}
    assert names == {"config.json", "generation_config.json", "model.safetensors", "conversion.json"}
    assert ConversionRecord.load(tmp_path / "glm" / "conversion.json") == record
    assert record.weight_files == ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    assert record.tokenizer is None
    generation = json.loads((tmp_path / "glm" / "generation_config.json").read_text())
    assert (generation["eos_token_id"], generation["pad_token_id"], generation["bos_token_id"]) == (2, 0, 1)


def test_tied_embedding_flag_is_ignored_like_chatglm3_does():
    config = glm_config(tiny_config())

    assert tiny_config()["tie_word_embeddings"] is True
    assert config.tie_word_embeddings is False
    state = tiny_state()
    assert not torch.equal(
        state["transformer.output_layer.weight"], state["transformer.embedding.word_embeddings.weight"]
    )


@pytest.mark.parametrize("layout", ["safetensors-sharded", "safetensors-single", "bin-single"])
def test_every_checkpoint_layout_converts_to_the_same_model(tmp_path, layout):
    src = write_checkpoint(tmp_path / "src", tiny_config(), tiny_state(), layout)

    convert_chatglm3(src, tmp_path / "glm")

    input_ids, expected = reference()
    assert (native_logits(tmp_path / "glm", input_ids) - expected).abs().max() <= 1e-4


def test_rope_ratio_scales_the_rotary_base(tmp_path):
    src = write_checkpoint(tmp_path / "src", tiny_config() | {"rope_ratio": 50}, tiny_state(), "bin-sharded")

    record = convert_chatglm3(src, tmp_path / "glm")

    assert record.rope_theta == 500000.0
    model = load_native(tmp_path / "glm")
    # ChatGLM3: inv_freq = 1 / (10000·rope_ratio) ** (arange(0, d, 2) / d) over half of each 16-wide head.
    chatglm3_inv_freq = 1.0 / (10000.0 * 50) ** (torch.arange(0, 8, 2, dtype=torch.float) / 8)
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, chatglm3_inv_freq)
    input_ids, unscaled = reference()
    with torch.no_grad():
        scaled = model(input_ids).logits
    # Position 0 is not rotated, so only later positions see the slower rotation.
    assert (scaled[:, 0] - unscaled[:, 0]).abs().max() <= 1e-4
    assert (scaled[:, 1:] - unscaled[:, 1:]).abs().max() > 1e-4


@pytest.mark.parametrize(("rope_ratio", "seq_length"), [(None, 8192), (50, 32768)])
def test_chatglm3_6b_shapes_and_parameter_count_on_meta_device(rope_ratio, seq_length):
    chatglm = json.loads((CHATGLM3_6B / "config.json").read_text())
    if rope_ratio:
        chatglm |= {"rope_ratio": rope_ratio, "seq_length": seq_length}
    config = glm_config(chatglm)
    from transformers import GlmForCausalLM

    with torch.device("meta"):
        model = GlmForCausalLM(config)
        source = {key: torch.empty(shape) for key, shape in chatglm3_shapes(chatglm).items()}

    assert sum(p.numel() for p in model.parameters()) == 6_243_584_000
    converted = convert_state_dict(source, config)
    assert {key: tuple(t.shape) for key, t in converted.items()} == {
        key: tuple(t.shape) for key, t in model.state_dict().items()
    }
    assert config.rope_parameters["rope_theta"] == 10000.0 * (rope_ratio or 1)
    assert config.max_position_embeddings == seq_length


def test_tokenizer_in_source_is_copied_and_sets_the_stop_ids(tmp_path):
    src = wide_vocab_checkpoint(tmp_path / "src")
    shutil.copyfile(TOKENIZER, src / "tokenizer.model")

    record = convert_chatglm3(src, tmp_path / "glm")

    assert (tmp_path / "glm" / "tokenizer.model").read_bytes() == TOKENIZER.read_bytes()
    assert record.tokenizer == str((src / "tokenizer.model").resolve())
    generation = json.loads((tmp_path / "glm" / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [2, 64795, 64797]  # eos, <|user|>, <|observation|>


def test_tokenizer_option_is_used_when_source_has_none(tmp_path):
    convert_chatglm3(wide_vocab_checkpoint(tmp_path / "src"), tmp_path / "glm", tokenizer=TOKENIZER)

    assert (tmp_path / "glm" / "tokenizer.model").read_bytes() == TOKENIZER.read_bytes()


def test_tokenizer_option_clashing_with_the_source_tokenizer_is_refused(tmp_path):
    src = wide_vocab_checkpoint(tmp_path / "src")
    shutil.copyfile(TOKENIZER, src / "tokenizer.model")

    with pytest.raises(ConfigError, match="leave out --tokenizer"):
        convert_chatglm3(src, tmp_path / "glm", tokenizer=TOKENIZER)


def test_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="64798 ids but the model embeds only 256"):
        convert_chatglm3(TINY, tmp_path / "glm", tokenizer=TOKENIZER)
    assert not (tmp_path / "glm").exists()


class _RunsCode:
    """Pickles to a call that creates a file: a weights-only reader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_pickled_code_in_a_bin_checkpoint_is_refused_unexecuted(tmp_path):
    src = write_checkpoint(tmp_path / "src", tiny_config(), tiny_state(), "bin-single")
    torch.save({"transformer.output_layer.weight": _RunsCode(tmp_path / "ran")}, src / "pytorch_model.bin")

    with pytest.raises(ConfigError, match=r"cannot read .*pytorch_model\.bin as plain weights"):
        convert_chatglm3(src, tmp_path / "glm")
    assert not (tmp_path / "ran").exists()


def _without(state: dict, key: str) -> dict:
    return {k: v for k, v in state.items() if k != key}


@pytest.mark.parametrize(
    ("config_change", "state_change", "message"),
    [
        ({"add_bias_linear": True}, None, "add_bias_linear=True has no native GLM equivalent"),
        ({"model_type": "llama"}, None, "not a ChatGLM config"),
        ({"kv_channels": 8}, None, "query_key_value.weight has 128 rows; config.json implies 64"),
        ({"ffn_hidden_size": 100}, None, "weights do not match its config.json"),
        (None, lambda s: _without(s, "transformer.output_layer.weight"), "no weight transformer.output_"),
        (None, lambda s: s | {"transformer.prefix_encoder.weight": torch.zeros(4, 2)}, "prefix_encoder"),
    ],
)
def test_inconsistent_checkpoints_are_refused(tmp_path, config_change, state_change, message):
    config = tiny_config() | (config_change or {})
    state = state_change(tiny_state()) if state_change else tiny_state()
    src = write_checkpoint(tmp_path / "src", config, state, "safetensors-single")

    with pytest.raises(ConfigError, match=message):
        convert_chatglm3(src, tmp_path / "glm")
    assert not (tmp_path / "glm").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_missing_source_files_are_named(tmp_path):
    src = write_checkpoint(tmp_path / "src", tiny_config(), tiny_state(), "bin-sharded")
    (src / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(ConfigError, match=re.escape("lacks pytorch_model-00002-of-00002.bin")):
        convert_chatglm3(src, tmp_path / "glm")

    (src / "pytorch_model.bin.index.json").unlink()
    with pytest.raises(ConfigError, match="has no weights"):
        convert_chatglm3(src, tmp_path / "glm")

    (src / "config.json").unlink()
    with pytest.raises(ConfigError, match=re.escape("lacks config.json")):
        convert_chatglm3(src, tmp_path / "glm")


def test_an_occupied_destination_is_left_alone(tmp_path):
    (tmp_path / "glm").mkdir()
    (tmp_path / "glm" / "notes.txt").write_text("keep me")

    with pytest.raises(ConfigError, match="already exists"):
        convert_chatglm3(TINY, tmp_path / "glm")
    assert [p.name for p in (tmp_path / "glm").iterdir()] == ["notes.txt"]


def test_cli_converts_and_reports_what_it_wrote(tmp_path):
    result = CliRunner().invoke(app, ["model", "convert-chatglm3", str(TINY), str(tmp_path / "glm")])

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # undo rich's line wrapping
    assert "model.safetensors" in output
    assert "119,360 parameters, float32, rope theta 10000" in output
    assert f"{tmp_path / 'glm'} has no tokenizer" in output


def test_cli_errors_are_project_errors(tmp_path):
    args = ["model", "convert-chatglm3", str(tmp_path / "nowhere"), str(tmp_path / "glm")]
    result = CliRunner().invoke(app, args)

    assert isinstance(result.exception, ConfigError)
    assert "lacks config.json" in str(result.exception)

"""Importing ChatGLM3's official P-tuning v2 prefixes: per-layer key/values equal ChatGLM3's, bad input refused."""

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from agent import kv
from agent.chatglm3_prefix import import_chatglm3_prefix
from agent.cli import app
from agent.convert import convert_chatglm3
from agent.errors import ConfigError
from agent.loading import LoadOptions, check_prefix, load_model, prepare_transformers

SHARED = Path(__file__).resolve().parents[2] / "shared"
TINY = SHARED / "chatglm3-tiny"
CHATGLM3_6B_CONFIG = SHARED / "chatglm3" / "config.json"
ENCODER = "transformer.prefix_encoder."

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason=f"test data {TINY} is missing")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """ChatGLM3's tiny checkpoint converted to native GLM: 2 layers, 2 key/value groups of 16 channels."""
    folder = tmp_path_factory.mktemp("base") / "glm"
    convert_chatglm3(TINY, folder)
    return folder


def chatglm3_prefix(folder: Path, pre_seq_len=5, projection=False, safetensors=False, source=TINY, **changes):
    """A checkpoint as ChatGLM3's P-tuning v2 scripts save one: ChatGLM's config and the prefix encoder alone."""
    config = json.loads((source / "config.json").read_text())
    config |= {"pre_seq_len": pre_seq_len, "prefix_projection": projection} | changes
    width = 2 * config["num_layers"] * config["multi_query_group_num"] * config["kv_channels"]
    hidden = config["hidden_size"]
    generator = torch.Generator().manual_seed(pre_seq_len)
    shapes = {"embedding.weight": (pre_seq_len, width)}
    if projection:
        shapes |= {"trans.0.weight": (hidden, width), "trans.0.bias": (hidden,)}
        shapes |= {"trans.2.weight": (width, hidden), "trans.2.bias": (width,)}
    state = {ENCODER + name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    if safetensors:
        save_file(state, folder / "model.safetensors")
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return config, state


def chatglm3_past_key_values(config: dict, state: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """ChatGLM3's `PrefixEncoder` and `get_prompt` for batch 1, written out: per layer (key, value), each in
    ChatGLM's cache layout [seq, batch, groups, kv_channels]."""
    prefix_tokens = torch.arange(config["pre_seq_len"]).unsqueeze(0)
    embedding = torch.nn.Embedding.from_pretrained(state[ENCODER + "embedding.weight"])
    past_key_values = embedding(prefix_tokens)
    if config["prefix_projection"]:
        trans = torch.nn.Sequential(
            torch.nn.Linear(*reversed(state[ENCODER + "trans.0.weight"].shape)),
            torch.nn.Tanh(),
            torch.nn.Linear(*reversed(state[ENCODER + "trans.2.weight"].shape)),
        )
        mlp = ENCODER + "trans."
        trans.load_state_dict({k.removeprefix(mlp): v for k, v in state.items() if k.startswith(mlp)})
        with torch.no_grad():
            past_key_values = trans(past_key_values)
    past_key_values = past_key_values.view(
        1, config["pre_seq_len"], config["num_layers"] * 2, config["multi_query_group_num"], config["kv_channels"]
    )
    past_key_values = past_key_values.permute([2, 1, 0, 3, 4]).split(2)
    return [(layer[0], layer[1]) for layer in past_key_values]


@pytest.mark.parametrize(
    # A copied prefix is exact; the MLP, run here on [tokens, width] and by ChatGLM3 on [batch, tokens, width],
    # may round differently (measured: equal bit for bit on this CPU).
    ("projection", "safetensors", "tolerance"),
    [(False, False, 0.0), (False, True, 0.0), (True, False, 1e-6)],
)
def test_imported_prefix_gives_chatglm3s_key_values_in_every_layer(base, tmp_path, projection, safetensors, tolerance):
    config, state = chatglm3_prefix(tmp_path / "chatglm3", projection=projection, safetensors=safetensors)

    imported = import_chatglm3_prefix(tmp_path / "chatglm3", tmp_path / "adapter", base)

    assert (imported.pre_seq_len, imported.layers, imported.projected) == (5, 2, projection)
    model = load_model(base, LoadOptions(device="cpu", prefix=tmp_path / "adapter"))
    with torch.no_grad():
        ours = kv.virtual(model)
    theirs = chatglm3_past_key_values(config, state)
    assert len(ours) == len(theirs) == 2
    for (key, value), (their_key, their_value) in zip(ours, theirs, strict=True):
        assert key.shape == (1, 2, 5, 16)  # [batch, key/value heads, virtual tokens, head_dim]
        # ChatGLM's [seq, batch, groups, channels] → transformers' [batch, heads, seq, head_dim]
        torch.testing.assert_close(key, their_key.permute(1, 2, 0, 3), rtol=0, atol=tolerance)
        torch.testing.assert_close(value, their_value.permute(1, 2, 0, 3), rtol=0, atol=tolerance)


def test_the_adapter_is_the_one_peft_writes_for_this_base(base, tmp_path):
    prepare_transformers()
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoConfig

    chatglm3_prefix(tmp_path / "chatglm3")
    import_chatglm3_prefix(tmp_path / "chatglm3", tmp_path / "adapter", base)
    peft_model = get_peft_model(
        load_model(base, LoadOptions(device="cpu")), PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5)
    )
    peft_model.save_pretrained(tmp_path / "peft")

    imported = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    written = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    for key in ("peft_type", "task_type", "num_virtual_tokens", "num_layers", "token_dim", "num_attention_heads"):
        assert imported[key] == written[key], key
    assert imported["num_transformer_submodules"] == written["num_transformer_submodules"] == 1
    assert imported["prefix_projection"] is False
    check_prefix(tmp_path / "adapter", AutoConfig.from_pretrained(base))


def test_the_command_imports(base, tmp_path):
    chatglm3_prefix(tmp_path / "chatglm3", projection=True)
    args = ["model", "import-chatglm3-prefix", str(tmp_path / "chatglm3"), str(tmp_path / "adapter")]

    result = CliRunner().invoke(app, [*args, "--base", str(base)], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "5 virtual tokens for 2 layers, ChatGLM3's prefix MLP applied" in result.output
    assert {path.name for path in (tmp_path / "adapter").iterdir()} >= {
        "adapter_config.json",
        "adapter_model.safetensors",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_layers": 3}, "trained for another base: its num_layers is 3, "),
        ({"multi_query_group_num": 4}, "its multi_query_group_num is 4, "),
        ({"pre_seq_len": None}, "has no pre_seq_len: not a P-tuning v2 checkpoint"),
        ({"model_type": "llama"}, "is not a ChatGLM config"),
    ],
)
def test_a_config_for_another_base_or_no_prefix_is_refused(base, tmp_path, changes, message):
    chatglm3_prefix(tmp_path / "chatglm3")
    config_file = tmp_path / "chatglm3" / "config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | changes))

    with pytest.raises(ConfigError, match=message):
        import_chatglm3_prefix(tmp_path / "chatglm3", tmp_path / "adapter", base)
    assert not (tmp_path / "adapter").exists()


def test_a_prefix_trained_on_chatglm3_6b_is_refused_for_another_base(base, tmp_path):
    chatglm3_prefix(tmp_path / "chatglm3", pre_seq_len=2, source=CHATGLM3_6B_CONFIG.parent)

    with pytest.raises(ConfigError, match=re.escape(f"its num_layers is 28, {base}'s num_hidden_layers is 2")):
        import_chatglm3_prefix(tmp_path / "chatglm3", tmp_path / "adapter", base)


def test_weights_that_disagree_with_the_config_are_refused(base, tmp_path):
    _, state = chatglm3_prefix(tmp_path / "rows", pre_seq_len=5)
    config_file = tmp_path / "rows" / "config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | {"pre_seq_len": 6}))
    with pytest.raises(ConfigError, match=r"embedding.weight is \[5, 128\], but its config.json implies \[6, 128\]"):
        import_chatglm3_prefix(tmp_path / "rows", tmp_path / "adapter", base)

    chatglm3_prefix(tmp_path / "mlp", projection=True)
    config_file = tmp_path / "mlp" / "config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | {"prefix_projection": False}))
    with pytest.raises(
        ConfigError,
        match=r"trans\.0\.bias.*, but its config\.json implies transformer\.prefix_encoder\.embedding\.weight \(",
    ):
        import_chatglm3_prefix(tmp_path / "mlp", tmp_path / "adapter", base)

    chatglm3_prefix(tmp_path / "whole", pre_seq_len=5)
    whole = state | {"transformer.encoder.final_layernorm.weight": torch.ones(64)}
    torch.save(whole, tmp_path / "whole" / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"holds more than a prefix encoder \(transformer.encoder.final_layernorm"):
        import_chatglm3_prefix(tmp_path / "whole", tmp_path / "adapter", base)
    assert not (tmp_path / "adapter").exists()


def test_missing_files_and_an_occupied_destination_are_named(base, tmp_path):
    chatglm3_prefix(tmp_path / "chatglm3")
    (tmp_path / "chatglm3" / "pytorch_model.bin").unlink()
    with pytest.raises(ConfigError, match="has no weights: expected one of"):
        import_chatglm3_prefix(tmp_path / "chatglm3", tmp_path / "adapter", base)

    with pytest.raises(ConfigError, match=re.escape("lacks config.json")):
        import_chatglm3_prefix(tmp_path / "nowhere", tmp_path / "adapter", base)

    chatglm3_prefix(tmp_path / "good")
    with pytest.raises(ConfigError, match="does not exist"):
        import_chatglm3_prefix(tmp_path / "good", tmp_path / "adapter", tmp_path / "no-base")

    import_chatglm3_prefix(tmp_path / "good", tmp_path / "adapter", base)
    with pytest.raises(ConfigError, match="already holds an adapter"):
        import_chatglm3_prefix(tmp_path / "good", tmp_path / "adapter", base)

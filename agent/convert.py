"""Convert a released ChatGLM3 checkpoint into transformers' native GLM layout (`GlmForCausalLM`).

ChatGLM3 and native GLM are the same network (RMSNorm, SwiGLU, grouped-query attention with a qkv bias,
rotary embedding on the first half of each head in interleaved pairs), so conversion renames weights and
splits the fused `query_key_value` into q, k and v (heads × kv_channels, groups × kv_channels twice).
The fused `dense_h_to_4h` keeps its [gate; up] order, which is native GLM's `gate_up_proj`. ChatGLM's
`rope_ratio` scales the rotary base 10000 and becomes the native `rope_theta`; the stored
`rotary_pos_emb.inv_freq` is dropped (native GLM recomputes it). ChatGLM3's code keeps a separate
`output_layer` even where its config says `tie_word_embeddings` (its model class has no output
embeddings to tie), so the native model never ties them.

Weights are data: `.bin` shards are read with `torch.load(weights_only=True)`, never unpickled as code.
"""

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError
from agent.loading import CONFIG_FILE, index_shards, prepare_transformers, read_json
from agent.tokenizer import TOKENIZER_FILE, GLMTokenizer

if TYPE_CHECKING:
    import torch
    from transformers import GlmConfig, GlmForCausalLM

RECORD_FILE = "conversion.json"
# Index files first (a sharded checkpoint), then single files; safetensors before pickled .bin.
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_REQUIRED = (
    "num_layers",
    "hidden_size",
    "ffn_hidden_size",
    "kv_channels",
    "num_attention_heads",
    "padded_vocab_size",
    "layernorm_epsilon",
    "seq_length",
)
# ChatGLM options the native architecture cannot express: the value it needs, as ChatGLM3 ships them.
_FIXED = {
    "rmsnorm": True,
    "post_layer_norm": True,
    "add_bias_linear": False,
    "apply_residual_connection_post_layernorm": False,
    "quantization_bit": 0,
    "pre_seq_len": None,
}
# ChatGLM3's special ids (its tokenizer's bos / eos / unk, which doubles as pad).
_PAD, _BOS, _EOS = 0, 1, 2
_INV_FREQ = "transformer.rotary_pos_emb.inv_freq"
_TOP_LEVEL = {
    "transformer.embedding.word_embeddings.weight": "model.embed_tokens.weight",
    "transformer.encoder.final_layernorm.weight": "model.norm.weight",
    "transformer.output_layer.weight": "lm_head.weight",
}
_PER_LAYER = {
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "post_attention_layernorm.weight",
    "self_attention.dense.weight": "self_attn.o_proj.weight",
    "mlp.dense_h_to_4h.weight": "mlp.gate_up_proj.weight",
    "mlp.dense_4h_to_h.weight": "mlp.down_proj.weight",
}


@dataclass(frozen=True)
class ConversionRecord:
    """What a conversion read and produced; saved as `conversion.json` beside the converted weights."""

    source: str
    weight_files: list[str]
    tokenizer: str | None
    dtype: str
    parameters: int
    rope_theta: float
    versions: dict[str, str]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "ConversionRecord":
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def read_chatglm_config(src: Path) -> dict[str, Any]:
    """ChatGLM's own `config.json` from `src`, checked to describe a ChatGLM2/3-style model."""
    path = src / CONFIG_FILE
    config = read_json(path)
    if config.get("model_type") != "chatglm":
        raise ConfigError(f"{path} is not a ChatGLM config (model_type {config.get('model_type')!r})")
    missing = [key for key in _REQUIRED if key not in config]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}: not a ChatGLM2/3 config")
    for key, needed in _FIXED.items():
        if config.get(key, needed) != needed:
            raise ConfigError(f"{path}: {key}={config[key]!r} has no native GLM equivalent (needs {needed})")
    return config


def glm_config(chatglm: Mapping[str, Any]) -> "GlmConfig":
    """The native `GlmConfig` of the network a ChatGLM config describes."""
    prepare_transformers()
    from transformers import GlmConfig

    heads = chatglm["num_attention_heads"]
    groups = chatglm["multi_query_group_num"] if chatglm.get("multi_query_attention") else heads
    return GlmConfig(
        vocab_size=chatglm["padded_vocab_size"],
        hidden_size=chatglm["hidden_size"],
        intermediate_size=chatglm["ffn_hidden_size"],
        num_hidden_layers=chatglm["num_layers"],
        num_attention_heads=heads,
        num_key_value_heads=groups,
        head_dim=chatglm["kv_channels"],
        max_position_embeddings=chatglm["seq_length"],
        rms_norm_eps=chatglm["layernorm_epsilon"],
        attention_bias=bool(chatglm.get("add_qkv_bias", False)),
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0 * chatglm.get("rope_ratio", 1),
            "partial_rotary_factor": 0.5,
        },
        pad_token_id=_PAD,
        bos_token_id=_BOS,
        eos_token_id=_EOS,
    )


def convert_state_dict(state: Mapping[str, "torch.Tensor"], config: "GlmConfig") -> dict[str, "torch.Tensor"]:
    """ChatGLM3 weights renamed and split into native GLM's names (views, no copies)."""
    remaining = {key: tensor for key, tensor in state.items() if key != _INV_FREQ}

    def take(key: str) -> "torch.Tensor":
        if key not in remaining:
            raise ConfigError(f"the checkpoint has no weight {key}")
        return remaining.pop(key)

    native = {new: take(old) for old, new in _TOP_LEVEL.items()}
    q_size = config.num_attention_heads * config.head_dim
    kv_size = config.num_key_value_heads * config.head_dim
    fused_rows = q_size + 2 * kv_size
    for layer in range(config.num_hidden_layers):
        old, new = f"transformer.encoder.layers.{layer}.", f"model.layers.{layer}."
        native |= {new + name: take(old + chatglm_name) for chatglm_name, name in _PER_LAYER.items()}
        for kind in ("weight", "bias") if config.attention_bias else ("weight",):
            key = f"{old}self_attention.query_key_value.{kind}"
            fused = take(key)
            if fused.shape[0] != fused_rows:
                raise ConfigError(f"{key} has {fused.shape[0]} rows; {CONFIG_FILE} implies {fused_rows}")
            for proj, part in zip("qkv", fused.split([q_size, kv_size, kv_size]), strict=True):
                native[f"{new}self_attn.{proj}_proj.{kind}"] = part
    if remaining:
        unknown = ", ".join(sorted(remaining))
        raise ConfigError(f"the checkpoint has weights native GLM has no place for: {unknown}")
    return native


def weight_files(src: Path) -> list[Path]:
    """The checkpoint's weight files: the shards its index names, or its single weights file."""
    for name in _INDEXES:
        if (src / name).is_file():
            return index_shards(src / name)
    for name in _SINGLE_FILES:
        if (src / name).is_file():
            return [src / name]
    raise ConfigError(f"{src} has no weights: expected one of {', '.join(_INDEXES + _SINGLE_FILES)}")


def read_weights(files: list[Path]) -> dict[str, "torch.Tensor"]:
    """All tensors of `files`, on the CPU; pickled files are read as data only."""
    import pickle

    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            if path.suffix == ".safetensors":
                tensors = load_file(path, device="cpu")
            else:
                tensors = torch.load(path, map_location="cpu", weights_only=True)
        except (SafetensorError, pickle.UnpicklingError, RuntimeError, OSError) as err:
            detail = (str(err).strip() or type(err).__name__).splitlines()[0]
            raise ConfigError(f"cannot read {path} as plain weights: {detail}") from None
        if not isinstance(tensors, dict):
            raise ConfigError(f"{path} holds a {type(tensors).__name__}, not named weights")
        state |= tensors
    return state


def _tokenizer_source(src: Path, tokenizer: Path | None, vocab_rows: int) -> GLMTokenizer | None:
    bundled = src / TOKENIZER_FILE
    if bundled.is_file() and tokenizer is not None:
        raise ConfigError(f"{src} has its own {TOKENIZER_FILE}; leave out --tokenizer")
    path = bundled if bundled.is_file() else tokenizer
    if path is None:
        return None
    loaded = GLMTokenizer(path)
    if loaded.vocab_size > vocab_rows:
        raise ConfigError(f"{path} has {loaded.vocab_size} ids but the model embeds only {vocab_rows} tokens")
    return loaded


def _empty_destination(dst: Path) -> None:
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ConfigError(f"{dst} already exists and is not an empty folder; choose a new destination")


def _native_model(config: "GlmConfig", state: Mapping[str, "torch.Tensor"], src: Path) -> "GlmForCausalLM":
    """A `GlmForCausalLM` holding the converted weights themselves (built on the meta device, no copies)."""
    import torch
    from transformers import GlmForCausalLM

    native = convert_state_dict(state, config)
    with torch.device("meta"):
        model = GlmForCausalLM(config)
    try:
        model.load_state_dict(native, strict=True, assign=True)
    except RuntimeError as err:
        detail = str(err).splitlines()[-1].strip()
        raise ConfigError(f"{src}: weights do not match its {CONFIG_FILE}: {detail}") from None
    return model


def convert_chatglm3(src: Path, dst: Path, tokenizer: Path | None = None) -> ConversionRecord:
    """Write the native GLM model of the ChatGLM3 checkpoint `src` into the new folder `dst`.

    `dst` receives safetensors weights, `config.json`, `generation_config.json` (stopping at eos and, with
    a tokenizer, at `<|user|>` and `<|observation|>`), `tokenizer.model` (from `src`, else `tokenizer`)
    and `conversion.json`. It is written beside `dst` first and renamed at the end, so a failed
    conversion leaves nothing behind.
    """
    _empty_destination(dst)
    config = glm_config(read_chatglm_config(src))
    glm_tokenizer = _tokenizer_source(src, tokenizer, config.vocab_size)
    files = weight_files(src)
    model = _native_model(config, read_weights(files), src)

    from transformers import GenerationConfig

    stop_ids = sorted(glm_tokenizer.stop_ids) if glm_tokenizer else _EOS
    model.generation_config = GenerationConfig(bos_token_id=_BOS, pad_token_id=_PAD, eos_token_id=stop_ids)
    record = ConversionRecord(
        source=str(src.resolve()),
        weight_files=[path.name for path in files],
        tokenizer=str(glm_tokenizer.model_file.resolve()) if glm_tokenizer else None,
        dtype=str(model.dtype).removeprefix("torch."),
        parameters=model.num_parameters(),
        rope_theta=config.rope_parameters["rope_theta"],
        versions={name: version(name) for name in ("grid-inspector", "torch", "transformers")},
    )
    staging = dst.parent / f".{dst.name}.converting-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        model.save_pretrained(staging)
        if glm_tokenizer:
            shutil.copyfile(glm_tokenizer.model_file, staging / TOKENIZER_FILE)
        record.save(staging / RECORD_FILE)
        if dst.exists():
            dst.rmdir()
        staging.rename(dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record

"""Import a prefix trained by ChatGLM3's official P-tuning v2 scripts as a peft prefix-tuning adapter.

ChatGLM3's scripts save the trained `PrefixEncoder` alone: `transformer.prefix_encoder.embedding.weight`, one
row per virtual token of `num_layers · 2 · multi_query_group_num · kv_channels` values, beside ChatGLM's
`config.json` with `pre_seq_len`. Its `get_prompt` views a row as [num_layers · 2, groups, kv_channels],
permutes to its cache layout [seq, batch, groups, kv_channels] and splits off (key, value) per layer: layer l
reads key 2l and value 2l + 1. peft's `get_prompt` views a row of `prompt_embeddings` as [num_layers · 2,
key/value heads, head_dim], permutes to transformers' layout [batch, heads, seq, head_dim] and splits the same
way. Both read a row in the same order — layer, key or value, head, channel — so rows are copied unchanged;
each library permutes them into its own cache layout.

With `prefix_projection`, ChatGLM3 runs each row through `trans` (Linear kv → hidden, tanh, Linear hidden →
kv) on every forward. After training that MLP is fixed, so it is applied once here, in float32, and its output
stored: the adapter holds the key/values themselves, as peft saves a projected prefix.

Numeric differences. Positions are the same: ChatGLM3 hands the prefix to attention as past key/values, so
its keys never get rotary embedding (only new keys are rotated, before they join the cache), the prefix is
always visible, and real tokens take positions from 0. Native GLM also rotates only new keys before
`Cache.update`, and the trainer and backend number real tokens from 0 after the virtual ones (peft's own
`forward` would number them from `pre_seq_len`; the agent never runs a prefix through it). What remains is
rounding: both cast the key/values to the model's dtype before attention (ChatGLM3's `.type(dtype)`, peft's
`base_model_torch_dtype`), and the adapter keeps float32, so a float32 or half-precision checkpoint arrives
exactly; a projected prefix differs from ChatGLM3's per-forward MLP by float32 rounding at most. Measured with
ChatGLM3's own modeling code on the tiny checkpoint in ../shared (float32, CPU, run outside the project): the
logits with an imported prefix equal ChatGLM3's exactly, and within 4e-7 with the MLP (logits up to 0.7);
numbering real tokens from `pre_seq_len` instead would move them by 0.04 to 0.4. ChatGLM3's dropout (0.1) on
the prefix acts only while training.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.convert import read_weights, weight_files
from agent.errors import ConfigError
from agent.loading import ADAPTER_CONFIG, ADAPTER_WEIGHTS, CONFIG_FILE, check_model_dir, prepare_transformers, read_json

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedConfig

ENCODER = "transformer.prefix_encoder."
PEFT_PREFIX = "prompt_embeddings"  # peft's name for a prefix's key/value rows in adapter_model.safetensors
# ChatGLM's config keys, and the native GLM config attributes they must equal.
_BASE_GEOMETRY = (
    ("num_layers", "num_hidden_layers"),
    ("multi_query_group_num", "num_key_value_heads"),
    ("kv_channels", "head_dim"),
    ("hidden_size", "hidden_size"),
)


@dataclass(frozen=True)
class ImportedPrefix:
    """What an import wrote: virtual tokens, layers, and whether ChatGLM3's prefix MLP was applied."""

    pre_seq_len: int
    layers: int
    projected: bool


def prefix_geometry(config: Mapping[str, Any], path: Path) -> dict[str, int]:
    """`pre_seq_len` and the key/value geometry of a ChatGLM P-tuning v2 `config.json`.

    `multi_query_group_num` is the key/value heads: the groups, or every head without multi-query attention.
    """
    if config.get("model_type") != "chatglm":
        raise ConfigError(f"{path} is not a ChatGLM config (model_type {config.get('model_type')!r})")
    pre_seq_len = config.get("pre_seq_len")
    if not isinstance(pre_seq_len, int) or pre_seq_len < 1:
        raise ConfigError(f"{path} has no pre_seq_len: not a P-tuning v2 checkpoint")
    groups_key = "multi_query_group_num" if config.get("multi_query_attention") else "num_attention_heads"
    missing = [key for key in ("num_layers", groups_key, "kv_channels", "hidden_size") if key not in config]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}: not a ChatGLM2/3 config")
    return {
        "pre_seq_len": pre_seq_len,
        "num_layers": config["num_layers"],
        "multi_query_group_num": config[groups_key],
        "kv_channels": config["kv_channels"],
        "hidden_size": config["hidden_size"],
    }


def check_base(geometry: Mapping[str, int], base: "PreTrainedConfig", src: Path, base_dir: Path) -> None:
    """Refuse a prefix whose ChatGLM3 had other layers, key/value heads or widths than the base."""
    for chatglm_key, native_key in _BASE_GEOMETRY:
        if geometry[chatglm_key] != getattr(base, native_key):
            raise ConfigError(
                f"{src} was trained for another base: its {chatglm_key} is {geometry[chatglm_key]}, "
                f"{base_dir}'s {native_key} is {getattr(base, native_key)}"
            )


def encoder_shapes(geometry: Mapping[str, int], projected: bool) -> dict[str, tuple[int, ...]]:
    """The prefix encoder's tensors, as ChatGLM3's `PrefixEncoder` creates them."""
    width = 2 * geometry["num_layers"] * geometry["multi_query_group_num"] * geometry["kv_channels"]
    hidden = geometry["hidden_size"]
    shapes = {"embedding.weight": (geometry["pre_seq_len"], width)}
    if projected:
        shapes |= {
            "trans.0.weight": (hidden, width),
            "trans.0.bias": (hidden,),
            "trans.2.weight": (width, hidden),
            "trans.2.bias": (width,),
        }
    return shapes


def encoder_weights(
    state: Mapping[str, "torch.Tensor"], shapes: Mapping[str, tuple[int, ...]], src: Path
) -> dict[str, "torch.Tensor"]:
    """The prefix encoder's tensors from a checkpoint that must hold exactly them, in their shapes."""
    others = sorted(key for key in state if not key.startswith(ENCODER))
    if others:
        named = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise ConfigError(f"{src} holds more than a prefix encoder ({named}): not a P-tuning v2 checkpoint")
    weights = {key.removeprefix(ENCODER): tensor for key, tensor in state.items()}
    if set(weights) != set(shapes):
        found, implied = (", ".join(ENCODER + name for name in sorted(names)) for names in (weights, shapes))
        raise ConfigError(f"{src} holds {found}, but its {CONFIG_FILE} implies {implied} (see prefix_projection)")
    for name, shape in shapes.items():
        if tuple(weights[name].shape) != shape:
            raise ConfigError(
                f"{src}: {ENCODER}{name} is {list(weights[name].shape)}, but its {CONFIG_FILE} implies {list(shape)}"
            )
    return weights


def key_values(weights: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
    """ChatGLM3's prefix-encoder output for its virtual tokens 0…pre_seq_len-1, in float32."""
    import torch
    from torch.nn.functional import linear

    rows = weights["embedding.weight"].float()
    if "trans.0.weight" not in weights:
        return rows
    hidden = torch.tanh(linear(rows, weights["trans.0.weight"].float(), weights["trans.0.bias"].float()))
    return linear(hidden, weights["trans.2.weight"].float(), weights["trans.2.bias"].float())


def import_chatglm3_prefix(src: Path, dst: Path, base_dir: Path) -> ImportedPrefix:
    """Write into `dst` the peft prefix-tuning adapter for `base_dir` equal to ChatGLM3's prefix in `src`."""
    if (dst / ADAPTER_CONFIG).exists() or (dst / ADAPTER_WEIGHTS).exists():
        raise ConfigError(f"{dst} already holds an adapter; choose a new destination")
    chatglm = read_json(src / CONFIG_FILE)
    geometry = prefix_geometry(chatglm, src / CONFIG_FILE)
    check_model_dir(base_dir)
    prepare_transformers()
    from peft import PrefixTuningConfig
    from safetensors.torch import save_file
    from transformers import AutoConfig

    base = AutoConfig.from_pretrained(base_dir)
    check_base(geometry, base, src, base_dir)
    projected = bool(chatglm.get("prefix_projection"))
    weights = encoder_weights(read_weights(weight_files(src)), encoder_shapes(geometry, projected), src)
    token_dim = base.num_key_value_heads * base.head_dim
    adapter = PrefixTuningConfig(
        task_type="CAUSAL_LM",
        base_model_name_or_path=str(base_dir.resolve()),
        num_virtual_tokens=geometry["pre_seq_len"],
        num_layers=base.num_hidden_layers,
        num_attention_heads=base.num_key_value_heads,
        token_dim=token_dim,
        encoder_hidden_size=token_dim,
        num_transformer_submodules=1,
    )
    dst.mkdir(parents=True, exist_ok=True)
    save_file({PEFT_PREFIX: key_values(weights).contiguous()}, dst / ADAPTER_WEIGHTS)
    adapter.save_pretrained(dst)
    return ImportedPrefix(pre_seq_len=geometry["pre_seq_len"], layers=base.num_hidden_layers, projected=projected)

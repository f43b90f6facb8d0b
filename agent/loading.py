"""Load a native GLM model folder (as `inspector model convert-chatglm3` writes) with loading options.

Options choose the device, the dtype, bitsandbytes quantization (NF4 or int8, on CUDA or the CPU) and a
P-tuning v2 prefix: a peft prefix-tuning adapter, checked against the base model before it is attached.
Models load through transformers' own `GlmForCausalLM`; remote code is never run.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from agent.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from transformers import BitsAndBytesConfig, PreTrainedConfig, PreTrainedModel

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "bf16", "fp16", "fp32"]
Bits = Literal[4, 8]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PREFIX_TENSOR = "prompt_embeddings"
_CHOICES = {"device": get_args(Device), "dtype": get_args(DType), "quantize": (*get_args(Bits), None)}
_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: `auto` picks CUDA when present, and bf16 there when the GPU supports it."""

    device: Device = "auto"
    dtype: DType = "auto"
    quantize: Bits | None = None
    prefix: Path | None = None

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                choices = ", ".join(str(choice) for choice in allowed)
                raise ConfigError(f"{name} must be one of {choices}, not {getattr(self, name)!r}")


def prepare_transformers() -> None:
    """Make transformers and peft importable: hub offline, torchvision's CPU fallback registered."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from agent.torch_compat import ensure_torchvision

    ensure_torchvision()


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; a missing or malformed file is a `ConfigError` naming it."""
    if not path.is_file():
        raise ConfigError(f"{path.parent} lacks {path.name}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return data


def index_shards(index: Path) -> list[Path]:
    """The weight shards a `*.index.json` names, all of which must be present beside it."""
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConfigError(f"{index} has no weight_map")
    shards = sorted(set(map(str, weight_map.values())))
    missing = [shard for shard in shards if not (index.parent / shard).is_file()]
    if missing:
        raise ConfigError(f"{index.parent} lacks {', '.join(missing)} (listed in {index.name})")
    return [index.parent / shard for shard in shards]


def check_model_dir(model_dir: Path) -> None:
    """Check that `model_dir` holds a native GLM model: its `config.json` and all its weights."""
    if not model_dir.is_dir():
        raise ConfigError(f"model folder {model_dir} does not exist")
    model_type = read_json(model_dir / CONFIG_FILE).get("model_type")
    if model_type == "chatglm":
        raise ConfigError(
            f"{model_dir} holds ChatGLM's own format: convert it with `inspector model convert-chatglm3` first"
        )
    if model_type != "glm":
        raise ConfigError(f"{model_dir / CONFIG_FILE} is not a GLM model (model_type {model_type!r})")
    if (model_dir / WEIGHTS_INDEX).is_file():
        index_shards(model_dir / WEIGHTS_INDEX)
    elif not (model_dir / WEIGHTS_FILE).is_file():
        raise ConfigError(f"{model_dir} lacks {WEIGHTS_FILE} (or {WEIGHTS_INDEX} with its shards)")


def check_prefix(prefix_dir: Path, base: "PreTrainedConfig") -> None:
    """Refuse a prefix that is not a P-tuning v2 adapter for this base (layers, key/value width, length)."""
    from safetensors import SafetensorError, safe_open

    adapter = read_json(prefix_dir / ADAPTER_CONFIG)
    if adapter.get("peft_type") != "PREFIX_TUNING":
        raise ConfigError(f"{prefix_dir} is a {adapter.get('peft_type')} adapter, not a P-tuning v2 prefix")
    kv_width = base.head_dim * base.num_key_value_heads
    for key, base_value in (("num_layers", base.num_hidden_layers), ("token_dim", kv_width)):
        if adapter.get(key) != base_value:
            raise ConfigError(
                f"{prefix_dir} was trained for another base: its {key} is {adapter.get(key)}, "
                f"the model's is {base_value}"
            )
    weights = prefix_dir / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"{prefix_dir} lacks {ADAPTER_WEIGHTS}")
    try:
        with safe_open(weights, framework="pt") as tensors:
            shape = tensors.get_slice(_PREFIX_TENSOR).get_shape()
    except (SafetensorError, OSError) as err:
        raise ConfigError(f"{weights} holds no {_PREFIX_TENSOR}: {err}") from None
    expected = [adapter.get("num_virtual_tokens"), 2 * base.num_hidden_layers * kv_width]
    if shape != expected:
        raise ConfigError(
            f"{weights}: {_PREFIX_TENSOR} is {shape}, but {ADAPTER_CONFIG} and the model "
            f"imply {expected} (num_virtual_tokens × 2·layers·key/value width)"
        )


def resolve_device(device: Device) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but torch sees no CUDA GPU; use the cpu or auto device")
    return device


def resolve_dtype(dtype: DType, device: str) -> "torch.dtype":
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, _TORCH_DTYPES[dtype])


def quantization_config(bits: Bits, compute_dtype: "torch.dtype") -> "BitsAndBytesConfig":
    """bitsandbytes NF4 (computing in `compute_dtype`) or int8 quantization."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as err:  # a broken native library raises more than ImportError
        raise ConfigError(f"--quantize {bits} is unavailable: bitsandbytes does not import ({err})") from None
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


CPU_PACK_BLOCK = 32  # bitsandbytes' block_n when it repacks NF4 weights for its AVX512-BF16 CPU kernel


def keep_unpackable_layers_generic(model: "PreTrainedModel") -> None:
    """NF4 layers whose output size bitsandbytes' fast CPU kernel cannot take keep its generic path.

    On a CPU with AVX512-BF16, bitsandbytes repacks a 4-bit layer at its first forward pass in blocks of 32
    output features, with one scale per quantization block of each row, and fails (`shape '[64, 2]' is
    invalid for input of size 160`) where either does not divide.
    """
    for module in model.modules():
        if not getattr(module, "support_avx512bf16_for_cpu", False):
            continue
        if module.out_features % CPU_PACK_BLOCK or module.in_features % module.weight.quant_state.blocksize:
            module.support_avx512bf16_for_cpu = False


def load_model(model_dir: Path, options: LoadOptions) -> "PreTrainedModel":
    """The model in `model_dir`, in eval mode, placed, typed, quantized and prefixed as `options` say."""
    check_model_dir(model_dir)
    prepare_transformers()
    from transformers import AutoConfig, AutoModelForCausalLM

    if options.prefix is not None:
        check_prefix(options.prefix, AutoConfig.from_pretrained(model_dir))
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    quantization = quantization_config(options.quantize, dtype) if options.quantize else None
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=dtype, device_map=device, quantization_config=quantization
    )
    if options.quantize == 4 and device == "cpu":
        keep_unpackable_layers_generic(model)
    if options.prefix is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, options.prefix)
    return model.eval()

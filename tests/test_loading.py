"""Loading a native GLM folder with options: device, dtype, 4/8-bit quantization, a P-tuning v2 prefix."""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from agent.convert import convert_chatglm3
from agent.errors import ConfigError
from agent.loading import LoadOptions, load_model, prepare_transformers, resolve_device, resolve_dtype
from tests.glm_tiny import tiny_glm

TINY = Path(__file__).resolve().parents[2] / "shared" / "chatglm3-tiny"
CPU = LoadOptions(device="cpu")

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason=f"test data {TINY} is missing")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """ChatGLM3's tiny random checkpoint, converted: the reference logits below are its original code's."""
    folder = tmp_path_factory.mktemp("model") / "glm"
    convert_chatglm3(TINY, folder)
    return folder


@pytest.fixture(scope="module")
def reference() -> tuple[torch.Tensor, torch.Tensor]:
    data = json.loads((TINY / "reference_logits.json").read_text())
    return torch.tensor(data["input_ids"]), torch.tensor(data["logits"])


def logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids.to(model.device)).logits.float().cpu()


def prefix_adapter(base, folder: Path, virtual_tokens: int = 4):
    """A peft P-tuning v2 (prefix-tuning) adapter on `base`, saved in `folder`; returns the peft model."""
    prepare_transformers()
    from peft import PrefixTuningConfig, get_peft_model

    torch.manual_seed(0)
    config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=virtual_tokens)
    peft_model = get_peft_model(base, config).eval()
    peft_model.save_pretrained(folder)
    return peft_model


@pytest.fixture(scope="module")
def prefix(model_dir, reference, tmp_path_factory) -> tuple[Path, torch.Tensor]:
    folder = tmp_path_factory.mktemp("prefix")
    peft_model = prefix_adapter(load_model(model_dir, CPU), folder)
    return folder, logits(peft_model, reference[0])


def test_fp32_on_cpu_reproduces_the_reference(model_dir, reference):
    model = load_model(model_dir, CPU)

    assert model.dtype == torch.float32
    assert model.device.type == "cpu"
    assert not model.training
    assert (logits(model, reference[0]) - reference[1]).abs().max() <= 1e-4


@pytest.mark.parametrize(
    ("dtype", "torch_dtype", "tolerance"), [("bf16", torch.bfloat16, 0.02), ("fp16", torch.float16, 0.005)]
)
def test_half_precision_dtypes(model_dir, reference, dtype, torch_dtype, tolerance):
    model = load_model(model_dir, LoadOptions(device="cpu", dtype=dtype))

    assert model.dtype == torch_dtype
    # measured: bf16 0.0047, fp16 0.0005 (logits up to 0.66)
    assert (logits(model, reference[0]) - reference[1]).abs().max() <= tolerance


@pytest.mark.parametrize(
    ("bits", "layer_class", "tolerance", "min_cosine"),
    [(4, "Linear4bit", 0.15, 0.98), (8, "Linear8bitLt", 0.02, 0.999)],
)
def test_quantized_on_cpu_stays_close_to_fp32(model_dir, reference, bits, layer_class, tolerance, min_cosine):
    model = load_model(model_dir, LoadOptions(device="cpu", quantize=bits))

    assert type(model.model.layers[0].mlp.gate_up_proj).__name__ == layer_class
    packing = [m for m in model.modules() if getattr(m, "support_avx512bf16_for_cpu", False)]
    assert all(m.out_features % 32 == 0 and m.in_features % 64 == 0 for m in packing), "down_proj: 160 inputs"
    quantized = logits(model, reference[0])
    # measured on this model: NF4 max |Δ| 0.084, cosine 0.993; int8 max |Δ| 0.0058, cosine 0.99996
    assert (quantized - reference[1]).abs().max() <= tolerance
    assert torch.cosine_similarity(quantized.flatten(), reference[1].flatten(), dim=0) >= min_cosine
    assert not torch.equal(quantized, reference[1])


def test_auto_dtype_is_bf16_only_on_a_cuda_gpu_that_supports_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("fp16", "cpu") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert resolve_dtype("auto", "cuda") == torch.float32


def test_auto_device_falls_back_to_cpu_and_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.parametrize(("name", "value"), [("device", "tpu"), ("dtype", "fp64"), ("quantize", 3), ("quantize", "8")])
def test_invalid_options_are_refused(name, value):
    with pytest.raises(ConfigError, match=f"{name} must be one of"):
        LoadOptions(**{name: value})


def test_quantization_without_bitsandbytes_is_a_clear_error(model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail

    with pytest.raises(ConfigError, match="--quantize 4 is unavailable: bitsandbytes does not import"):
        load_model(model_dir, LoadOptions(device="cpu", quantize=4))


def test_missing_files_are_named(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(tmp_path / "nowhere", CPU)

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match=re.escape("lacks model.safetensors")):
        load_model(broken, CPU)

    index = {"weight_map": {"lm_head.weight": "part-1.safetensors"}}
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match=re.escape("lacks part-1.safetensors")):
        load_model(broken, CPU)

    (broken / "config.json").unlink()
    with pytest.raises(ConfigError, match=re.escape("lacks config.json")):
        load_model(broken, CPU)


def test_an_unconverted_chatglm3_folder_points_to_the_conversion():
    with pytest.raises(ConfigError, match="inspector model convert-chatglm3"):
        load_model(TINY, CPU)


def test_prefix_is_attached(model_dir, reference, prefix):
    folder, expected = prefix

    model = load_model(model_dir, LoadOptions(device="cpu", prefix=folder))

    prefixed = logits(model, reference[0])
    assert torch.allclose(prefixed, expected, atol=1e-6)
    assert (prefixed - reference[1]).abs().max() > 1e-3


def test_prefix_on_a_4bit_base(model_dir, reference, prefix):
    folder, expected = prefix

    model = load_model(model_dir, LoadOptions(device="cpu", quantize=4, prefix=folder))

    assert type(model.get_base_model().model.layers[0].mlp.gate_up_proj).__name__ == "Linear4bit"
    assert (logits(model, reference[0]) - expected).abs().max() <= 0.15


@pytest.mark.parametrize(
    ("layers", "message"),
    [(3, "its num_layers is 3, the model's is 2"), (2, "its token_dim is 16, the model's is 32")],
)
def test_prefix_for_another_base_is_refused(model_dir, tmp_path, layers, message):
    prefix_adapter(tiny_glm(256, layers=layers), tmp_path / "prefix")  # key/value width 2 × 8, not 2 × 16

    with pytest.raises(ConfigError, match=f"trained for another base: {message}"):
        load_model(model_dir, LoadOptions(device="cpu", prefix=tmp_path / "prefix"))


def test_prefix_whose_length_disagrees_with_its_weights_is_refused(model_dir, prefix, tmp_path):
    folder = shutil.copytree(prefix[0], tmp_path / "prefix")
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps(config | {"num_virtual_tokens": 16}))

    with pytest.raises(ConfigError, match=re.escape("prompt_embeddings is [4, 128], but adapter_config")):
        load_model(model_dir, LoadOptions(device="cpu", prefix=folder))


def test_prefix_folder_problems_are_named(model_dir, prefix, tmp_path):
    folder = shutil.copytree(prefix[0], tmp_path / "prefix")
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps(config | {"peft_type": "LORA"}))
    with pytest.raises(ConfigError, match="LORA adapter, not a P-tuning v2 prefix"):
        load_model(model_dir, LoadOptions(device="cpu", prefix=folder))

    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(ConfigError, match=re.escape("lacks adapter_model.safetensors")):
        load_model(model_dir, LoadOptions(device="cpu", prefix=folder))

    (folder / "adapter_config.json").unlink()
    with pytest.raises(ConfigError, match=re.escape("lacks adapter_config.json")):
        load_model(model_dir, LoadOptions(device="cpu", prefix=folder))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("quantize", [None, 4, 8])
def test_auto_options_on_a_gpu(model_dir, reference, prefix, quantize):
    model = load_model(model_dir, LoadOptions(quantize=quantize, prefix=prefix[0]))

    assert model.device.type == "cuda"
    base_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert model.get_base_model().model.embed_tokens.weight.dtype == base_dtype
    assert (logits(model, reference[0]) - prefix[1]).abs().max() <= 0.15

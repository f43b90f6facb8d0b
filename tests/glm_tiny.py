"""Tiny random GLM models for tests: the real architecture at a size that runs in milliseconds."""

from typing import Any


def tiny_glm(vocab_size: int, seed: int = 0, layers: int = 2, context: int = 2048) -> Any:
    import torch

    from agent.torch_compat import ensure_torchvision

    ensure_torchvision()
    from transformers import GlmConfig, GlmForCausalLM

    config = GlmConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=context,
        attention_bias=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.5,  # large weights: outputs that depend on every input token and position
    )
    torch.manual_seed(seed)
    return GlmForCausalLM(config).eval()

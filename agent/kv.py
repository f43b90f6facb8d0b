"""Key/value prefixes for `GlmForCausalLM`: the P-tuning v2 virtual tokens and a shared leading message.

Training and generation both run the model on top of a prefix that every sequence shares: the virtual
tokens of a prefix-tuning adapter (no positions) and the system message that offers the tools (positions
from 0). `extend` runs the shared tokens once, for batch 1 — with gradients when training — and
`cache` broadcasts the result to a batch.
"""

from typing import Any

KV = list[tuple[Any, Any]]  # per layer: (keys, values), each [batch, kv_heads, length, head_dim]


def length(kv: KV) -> int:
    return int(kv[0][0].shape[2]) if kv else 0


def layers(cache: Any) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def cache(kv: KV, batch: int) -> Any:
    """A fresh DynamicCache holding `kv` broadcast to `batch` rows (the stored tensors are never mutated)."""
    from transformers import DynamicCache

    if not kv:
        return None
    return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv])


def join(first: KV, second: KV) -> KV:
    """`first` broadcast to the batch of `second`, followed by `second`, layer by layer; either may be empty."""
    import torch

    if not first or not second:
        return first or second
    rows = int(second[0][0].shape[0])
    return [
        (torch.cat([k.expand(rows, -1, -1, -1), k2], dim=2), torch.cat([v.expand(rows, -1, -1, -1), v2], dim=2))
        for (k, v), (k2, v2) in zip(first, second, strict=True)
    ]


def virtual(model: Any) -> KV:
    """The virtual key/values of a peft prefix-tuning model for batch 1; empty for any other model."""
    if not hasattr(model, "get_prompt"):
        return []
    prompt = model.get_prompt(batch_size=1)
    return layers(prompt) if hasattr(prompt, "layers") else [(layer[0], layer[1]) for layer in prompt]


def extend(base: Any, past: KV, ids: list[int]) -> KV:
    """`past` followed by the key/values of `ids` (batch 1), whose positions start at 0."""
    import torch

    if not ids:
        return past
    device = next(base.parameters()).device
    output = base(
        input_ids=torch.tensor([ids], device=device),
        attention_mask=torch.ones(1, length(past) + len(ids), dtype=torch.long, device=device),
        position_ids=torch.arange(len(ids), device=device)[None],
        past_key_values=cache(past, 1),
        use_cache=True,
    )
    return layers(output.past_key_values)

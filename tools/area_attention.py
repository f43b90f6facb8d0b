"""Run YOLOv12 checkpoints trained with the original YOLOv12 code on current ultralytics.

YOLOv12 was first published as a fork of ultralytics 8.3.63, whose area-attention module (`AAttn`) has
separate `qk` and `v` convolutions and adds a positional convolution of `v` before the output
projection. Current ultralytics' `AAttn` expects one fused `qkv` convolution and fails on such a
checkpoint with "'AAttn' object has no attribute 'qkv'". The weights are fine; only the forward pass
differs. `adapt` gives every old-layout `AAttn` in a loaded model the fork's forward pass, leaving
ultralytics itself untouched.
"""

from functools import cache
from typing import Any


def _legacy_forward(self: Any, x: Any) -> Any:
    """The fork's computation, with torch's fused attention in place of its explicit softmax."""
    import torch.nn.functional as F

    batch, channels, height, width = x.shape
    qk = self.qk(x).flatten(2).transpose(1, 2)
    v = self.v(x)
    positional = self.pe(v)
    v = v.flatten(2).transpose(1, 2)
    # Each of `area` horizontal stripes of the feature map attends within itself.
    groups, length = batch * self.area, height * width // self.area

    def heads(t: Any) -> Any:
        return t.reshape(groups, length, self.num_heads, self.head_dim).transpose(1, 2)

    q, k = qk.split(channels, dim=2)
    attended = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
    attended = attended.transpose(1, 2).reshape(batch, height, width, channels).permute(0, 3, 1, 2)
    return self.proj(attended + positional)


@cache
def _legacy_class() -> type:
    from ultralytics.nn.modules.block import AAttn

    return type("LegacyAAttn", (AAttn,), {"forward": _legacy_forward, "__doc__": "AAttn in the fork's layout."})


def adapt(model: Any) -> int:
    """Give each old-layout area-attention module of `model` (a torch module) the fork's forward pass.

    Returns how many modules were adapted; models without such modules are left as they are.
    """
    from ultralytics.nn.modules.block import AAttn

    adapted = 0
    for module in model.modules():
        if isinstance(module, AAttn) and hasattr(module, "qk") and not hasattr(module, "qkv"):
            module.__class__ = _legacy_class()
            adapted += 1
    return adapted

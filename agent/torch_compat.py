"""Make `import torchvision` work when its compiled operators do not match the installed torch.

The torchvision wheel pinned beside the CPU build of torch is linked against CUDA; its C++ extension
does not load, so `torchvision::nms` is never registered and `import torchvision` fails (which also
breaks ultralytics and some transformers image paths). `ensure_torchvision()` tries the native import
first and, only if that fails for this reason, registers pure-torch CPU implementations of the two
operators torchvision's import needs, then imports it again and lets `torchvision.ops.nms` (which
otherwise refuses to run without the extension) call the fallback.
"""

import sys

import torch

_OPS = ("nms", "qnms")


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices sorted by decreasing score."""
    order = scores.argsort(descending=True)
    boxes = boxes[order].float()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = slice(i + 1, None)
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter).clamp(min=1e-12)
        suppressed[rest] |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def _register_cpu_ops() -> None:
    for name in _OPS:
        torch.library.define(f"torchvision::{name}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        torch.library.impl(f"torchvision::{name}", "CPU")(_nms)


def _forget_torchvision() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def ensure_torchvision() -> None:
    """Import torchvision, registering CPU fallbacks for its operators only if the native import fails."""
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
        _forget_torchvision()
        _register_cpu_ops()
        import torchvision.ops.boxes

        # boxes.py only calls torch.ops.torchvision.nms, which is now registered.
        torchvision.ops.boxes._assert_has_ops = lambda: None

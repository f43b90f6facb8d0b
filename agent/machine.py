"""The machine a result was made on.

A build of the default model is bit for bit the same only on the same kind of CPU: the matrix and vector
kernels chosen for a CPU round differently, the differences grow through training, and the build ends
elsewhere (docs/default_model_history.md: how much a build varies). The capability torch reports is not the
whole of it (an AMD EPYC and an Intel Xeon both ran AVX512 and still differed: the BLAS and oneDNN kernels
behind it choose per CPU). So each build records where it ran, beside its recipe.
"""

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text(encoding="utf-8").splitlines() if cpuinfo.is_file() else []
    names = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def build_machine() -> dict[str, Any]:
    """What a bit-for-bit rebuild depends on: the CPU, torch, the kernels torch chose, its threads."""
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }

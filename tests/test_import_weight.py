"""Importing the packages (and building the CLI) must not pull in torch, transformers or ultralytics."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "ultralytics", "cv2", "peft", "bitsandbytes")


def test_imports_stay_light():
    code = (
        "import sys, agent, tools, prompts, agent.cli, agent.chatglm_format, agent.reports;"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

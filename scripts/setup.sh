#!/usr/bin/env bash
# Creates .venv with the pinned dependencies and installs the project into it (editable).
# Idempotent: a stamp holds the hash of everything that decides the environment, so a second run
# with nothing changed returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

py=${PYTHON:-python3.11}
command -v "$py" >/dev/null 2>&1 || py=python3
stamp=.venv/.setup-stamp
want=$(cat requirements.lock requirements-models.lock pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "setting up .venv (python: $("$py" --version 2>&1))" >&2
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" -r requirements.lock
# Pretrained detector weights ship inside these wheels; their own dependencies (ipython, onnx,
# scikit-learn, seaborn, ...) are not needed to read a checkpoint, so they install without them.
"${pip[@]}" --no-deps -r requirements-models.lock
"${pip[@]}" --no-deps --no-build-isolation -e .
echo "$want" >"$stamp"
echo "setup done" >&2

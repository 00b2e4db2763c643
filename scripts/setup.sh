#!/usr/bin/env bash
# Create .venv in the repository root and install dpodiff into it (idempotent, offline but for PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.dpodiff-installed
want="$(cat pyproject.toml | sha1sum | cut -c1-40)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # The CPU wheel of torch; a bare "torch" would pull a multi-GB CUDA build on a CPU machine.
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        .venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q torch
    fi
    .venv/bin/python -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
fi

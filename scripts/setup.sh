#!/usr/bin/env bash
# Creates .venv and installs the project with its test tools.
# torch comes first: the CPU build where no NVIDIA GPU is present (a plain `torch` requirement would pull
# a CUDA build of several GB), the default (CUDA) build where one is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    python -m pip install --quiet "torch==${TORCH_VERSION}"
  else
    # The CPU build. Where pip's configured local wheel folder (find-links) holds it, `torch==X` takes it
    # from there (its +cpu local version sorts first) and the dependencies from the index; else it comes
    # from PyTorch's CPU index. Never a plain `torch`, which would pull a CUDA build of several GB.
    tmpd=$(mktemp -d)
    if python -m pip download --quiet --no-deps --no-index -d "$tmpd" "torch==${TORCH_VERSION}" >/dev/null 2>&1 \
        && ls "$tmpd"/torch-*+cpu-*.whl >/dev/null 2>&1; then
      python -m pip install --quiet "torch==${TORCH_VERSION}"
    else
      python -m pip install --quiet "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple
    fi
    rm -rf "$tmpd"
  fi
fi
python -m pip install --quiet -e ".[dev]"
python -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"

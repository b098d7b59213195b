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
# The project, with torch held at the build installed above (a dependency such as torchvision would otherwise
# replace it with the newest, CUDA, build). Extras: dev (tests) and, where no NVIDIA GPU is present, openvino
# (the int8 encoder that ESCO_BACKEND=auto prefers on CPUs, docs/benchmarks.md); ESCO_SETUP_EXTRAS overrides.
if [ -z "${ESCO_SETUP_EXTRAS+x}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    ESCO_SETUP_EXTRAS=dev
  else
    ESCO_SETUP_EXTRAS=dev,openvino
  fi
fi
constraints=$(mktemp)
python -m pip freeze | grep -i '^torch==' > "$constraints" || true
python -m pip install --quiet --constraint "$constraints" -e ".${ESCO_SETUP_EXTRAS:+[$ESCO_SETUP_EXTRAS]}"
rm -f "$constraints"
python -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
echo "extras: ${ESCO_SETUP_EXTRAS:-none}"

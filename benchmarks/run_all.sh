#!/usr/bin/env bash
# Run every benchmark (see benchmarks/README.md); arguments go to benchmarks/run_all.py (--quick, --only).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m benchmarks.run_all "$@"

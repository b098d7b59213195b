"""Runs one export in a child process: ``python -m search.encoding.export_worker < job.json``.

:mod:`search.encoding.prepare` starts it. NNCF and optimum draw progress bars and log to stdout; in a child
process that output is captured by the parent and logged, so the host's stdout (``esco-search --json``, a
service's other threads) is never touched, and the quantization's memory is returned when it exits.

The job is one JSON object: ``{"kind": ..., "folder": ..., "tdir": ..., "source": {...}, ...}`` with the
arguments of the export function of ``kind`` (see :data:`EXPORTS`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.encoding import onnx_export, openvino_export
from search.encoding.quiet import quiet_false_alarms

__all__ = ["EXPORTS", "run_job"]

EXPORTS: dict[str, Callable[..., None]] = {
    "openvino_fp32": openvino_export.export_fp32,
    "openvino_int8": openvino_export.export_int8,
    "openvino_int8w": openvino_export.export_int8_weights,
    "onnx_fp32": onnx_export.export_fp32,
    "onnx_int8": onnx_export.export_int8,
}


def run_job(job: dict[str, Any]) -> None:
    """Run the export that ``job`` describes, in this process."""
    args = dict(job)
    fn = EXPORTS[args.pop("kind")]
    args["folder"], args["tdir"] = Path(args["folder"]), Path(args["tdir"])
    with quiet_false_alarms():
        fn(**args)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run_job(json.loads(sys.stdin.read()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

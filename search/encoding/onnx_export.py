"""ONNX exports: fp32 with O2 graph optimizations (optimum), dynamic int8 of the MatMuls (ONNX Runtime).

Run in a child process by :mod:`search.encoding.prepare` (see :mod:`search.encoding.export_worker`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from search.encoding.export_cache import load_st, move_into, record

__all__ = ["FP32_FILE", "INT8_OPS", "export_fp32", "export_int8"]

FP32_FILE = "model_O2.onnx"
INT8_OPS = "MatMul"  # the dense layers; the embedding table (Gather) stays fp32: less error, same speed


def export_fp32(folder: Path, tdir: Path, source: dict[str, Any], file_name: str = FP32_FILE) -> None:
    """``tdir/onnx/model.onnx`` (plain) and ``file_name`` (O2: fused attention, layer norm, GELU; exact)."""
    from sentence_transformers.backend import export_optimized_onnx_model

    export_dir = tdir / "onnx"
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        st = load_st(folder, "onnx", {"export": True, "provider": "CPUExecutionProvider"})
        st[0].auto_model.save_pretrained(tmp)  # <tmp>/onnx/model.onnx
        export_optimized_onnx_model(st, "O2", tmp, file_suffix="O2")  # <tmp>/onnx/model_O2.onnx
        got = Path(tmp) / "onnx"
        # the plain export stays too: the int8 quantizer cannot read O2's fused (com.microsoft) operators
        names = sorted(p.name for p in got.iterdir() if p.name.startswith(("model.onnx", file_name)))
        names.sort(key=lambda n: n == file_name)
        move_into(got, names, export_dir)
    record(export_dir, "model.onnx", source, {"made_by": "optimum export"})
    record(export_dir, file_name, source, {"made_by": "optimum export + ORTOptimizer O2"})


def export_int8(folder: Path, tdir: Path, source: dict[str, Any], file_name: str, src: str) -> None:
    """Dynamic int8 quantization (ONNX Runtime), per channel, of the MatMuls only, with the CPU's preset."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    export_dir = tdir / "onnx"
    preset = file_name.removeprefix("model_qint8_").removesuffix(".onnx")
    config = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=True, operators_to_quantize=[INT8_OPS])
    st = load_st(folder, "onnx", {"file_name": f"onnx/{src}", "provider": "CPUExecutionProvider"})
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        export_dynamic_quantized_onnx_model(st, config, tmp, file_suffix=f"qint8_{preset}")
        move_into(Path(tmp) / "onnx", [file_name], export_dir)
    record(export_dir, file_name, source, {"made_by": "ORTQuantizer dynamic", "config": preset,
                                           "per_channel": True, "ops": INT8_OPS, "from": src})

"""OpenVINO exports: fp32 (optimum-intel), static int8 (NNCF, calibrated), int8 weights only (NNCF).

These functions do the work in the process that calls them; :mod:`search.encoding.prepare` runs them in a
child process (:mod:`search.encoding.export_worker`), so that NNCF's and optimum's progress bars never reach
the host's stdout. In the int8 models what stays in floating point runs at OpenVINO's default precision (bf16
on CPUs with native bf16, else f32).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.encoding.export_cache import load_st, move_into, record

__all__ = ["FP32_FILE", "INT8_FILE", "INT8W_FILE", "PRECISION_HINT", "export_fp32", "export_int8",
           "export_int8_weights"]

FP32_FILE = "openvino_model.xml"
INT8_FILE = "openvino_model_qint8_esco.xml"
INT8W_FILE = "openvino_model_int8_weights.xml"
# int8 models: the operations left in floating point run at OpenVINO's default (bf16 where the CPU has it)
PRECISION_HINT: dict[str, str | None] = {"fp32": "f32", "bf16": "bf16", "int8": None, "int8w": None}


def export_fp32(folder: Path, tdir: Path, source: dict[str, Any]) -> None:
    """Export the Transformer module in ``tdir`` to ``tdir/openvino/openvino_model.xml``."""
    export_dir = tdir / "openvino"
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        st = load_st(folder, "openvino", {"export": True, "ov_config": {"INFERENCE_PRECISION_HINT": "f32"}})
        st[0].auto_model.save_pretrained(tmp)  # sentence-transformers' wrapper saves into <tmp>/openvino/
        move_into(Path(tmp) / "openvino", ["openvino_model.bin", FP32_FILE], export_dir)
    record(export_dir, FP32_FILE, source, {"made_by": "optimum-intel export"})


def export_int8(
    folder: Path, tdir: Path, source: dict[str, Any], file_name: str, texts: Sequence[str], texts_id: str
) -> None:
    """Static post-training quantization with NNCF, calibrated on ``texts`` (one unpadded text per sample).

    sentence-transformers' ``export_static_quantized_openvino_model`` would calibrate on GLUE/SST-2 from the hub
    (needs ``datasets`` and a download); this does the same quantization with NNCF on ESCO-like texts.
    """
    import nncf
    import numpy as np
    import openvino as ov

    export_dir = tdir / "openvino"
    st = load_st(folder, "openvino", {"file_name": f"openvino/{FP32_FILE}",
                                      "ov_config": {"INFERENCE_PRECISION_HINT": "f32"}})
    ov_model = st[0].auto_model.model  # the openvino.Model (not compiled)
    names = {inp.get_any_name() for inp in ov_model.inputs}
    samples = []
    for text in texts:
        enc = st.tokenizer([text], truncation=True, max_length=st.max_seq_length, return_tensors="np")
        samples.append({k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in names})
        for k in names - set(samples[-1]):
            if k == "token_type_ids":
                samples[-1][k] = np.zeros_like(samples[-1]["input_ids"])
    quantized = nncf.quantize(
        ov_model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED, subset_size=len(samples),
    )
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        ov.save_model(quantized, str(Path(tmp) / file_name), compress_to_fp16=False)
        move_into(Path(tmp), [Path(file_name).with_suffix(".bin").name, file_name], export_dir)
    record(export_dir, file_name, source,
           {"made_by": "nncf.quantize", "calibration_samples": len(samples), "calibration": texts_id,
            "preset": "mixed", "smooth_quant": "nncf default for transformers"})


def export_int8_weights(folder: Path, tdir: Path, source: dict[str, Any], file_name: str) -> None:
    """Weight-only int8 (NNCF ``compress_weights``, asymmetric, per channel): no calibration.

    OpenVINO's CPU plugin quantizes the activations of these layers on the fly (dynamic quantization,
    ``DYNAMIC_QUANTIZATION_GROUP_SIZE``), like ONNX Runtime's dynamic int8.
    """
    import nncf
    import openvino as ov

    export_dir = tdir / "openvino"
    ov_model = ov.Core().read_model(str(export_dir / FP32_FILE))
    compressed = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        ov.save_model(compressed, str(Path(tmp) / file_name), compress_to_fp16=False)
        move_into(Path(tmp), [Path(file_name).with_suffix(".bin").name, file_name], export_dir)
    record(export_dir, file_name, source, {"made_by": "nncf.compress_weights", "mode": "int8_asym"})

"""Which backends this environment can run: the extras' packages, their versions, and clear errors.

=========  =========================================================================================
backend    precisions
=========  =========================================================================================
torch      ``fp32``, ``bf16`` (CPUs with native bf16 or GPUs), ``fp16`` (GPUs)
onnx       ``fp32`` (ONNX export, O2 graph optimizations), ``int8`` (ONNX Runtime dynamic quantization)
openvino   ``fp32``, ``bf16``, ``int8`` (static NNCF quantization, calibrated), ``int8w`` (int8 weights only)
=========  =========================================================================================
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from search.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["BACKEND_PRECISIONS", "backend_installed", "check_backend", "package_version", "package_versions"]

BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "fp16"),
    "onnx": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8", "int8w"),
}
_EXTRA = {"onnx": "onnx", "openvino": "openvino"}
# the distributions that make a backend "installed" (whether or not they import)
_DISTRIBUTIONS = {"onnx": (("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"), ("optimum-onnx",)),
                  "openvino": (("openvino",), ("optimum-intel",))}
# What the optimum packages accept (their pins, as of optimum-onnx 0.1.0 and optimum-intel 2.2.0)
_NEEDS = {
    "onnx": "transformers<4.58 (optimum-onnx 0.1), hence sentence-transformers 5.x",
    "openvino": "transformers>=4.51,<5.6 and huggingface-hub<1.22 (optimum-intel 2.2)",
}
_VERSIONED = ("torch", "transformers", "sentence-transformers", "tokenizers", "openvino", "nncf", "optimum",
              "optimum-intel", "optimum-onnx", "onnxruntime")


def package_version(dist: str) -> str:
    """The installed version of distribution ``dist``, or ``(not installed)``."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return "(not installed)"


def package_versions() -> dict[str, str]:
    """Versions of every package an encoder's output depends on (part of the verdict key)."""
    return {d: package_version(d) for d in _VERSIONED}


def backend_installed(backend: str) -> bool:
    """Whether the extra of ``backend`` is installed at all (its distributions are present), importable or not."""
    if backend == "torch":
        return True
    return all(any(package_version(d) != "(not installed)" for d in group) for group in _DISTRIBUTIONS[backend])


def check_backend(backend: str, precision: str) -> None:
    """Refuse an unknown backend/precision pair, or a backend whose packages cannot be imported.

    Raises:
        ConfigError: names the valid precisions, or the extra to install and the import error.
    """
    if backend not in BACKEND_PRECISIONS:
        raise ConfigError(f"unknown backend {backend!r}: use one of {', '.join(BACKEND_PRECISIONS)}")
    if precision not in BACKEND_PRECISIONS[backend]:
        raise ConfigError(
            f"ESCO_PRECISION={precision} is not available with ESCO_BACKEND={backend}: use one of "
            f"{', '.join(BACKEND_PRECISIONS[backend])}"
        )
    if backend == "torch":
        return
    modules = {
        "onnx": ["onnxruntime", "optimum.onnxruntime"],
        "openvino": ["openvino", "optimum.intel.openvino"] + (["nncf"] if precision.startswith("int8") else []),
    }[backend]
    for mod in modules:
        try:
            __import__(mod)
        except Exception as exc:  # ImportError, or a version clash raising anything at import
            why = f"{mod} cannot be imported: {type(exc).__name__}: {exc}"
            if not isinstance(exc, ModuleNotFoundError):  # installed, but not for these versions
                why += (f"; it needs {_NEEDS[backend]}, this environment has transformers "
                        f"{package_version('transformers')}")
            raise ConfigError(
                f"ESCO_BACKEND={backend} needs the {_EXTRA[backend]!r} extra: "
                f"`pip install 'esco-skill-search[{_EXTRA[backend]}]'` ({why}). "
                f"See docs/benchmarks.md for the versions that work together"
            ) from exc

"""What this machine computes natively: the CPU's model and flags (read once), and the torch device.

The flags decide which precisions are worth trying (bf16 only where the CPU has bf16 instructions; the int8
kernels of AVX2, AVX-512 VNNI or AMX) and are part of the key of every cached backend verdict.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

__all__ = ["CpuInfo", "cpu_info", "cpu_has_bf16", "cpu_int8_kernels", "default_device", "onnx_quantization_preset"]


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as ``/proc/cpuinfo`` names it (empty model and flags where it cannot be read)."""

    model: str
    machine: str
    flags: frozenset[str]

    @property
    def bf16(self) -> bool:
        """Native bf16 arithmetic (AVX512-BF16 or AMX-BF16): bf16 inference is fast, not emulated."""
        return bool(self.flags & {"avx512_bf16", "amx_bf16"})

    @property
    def vnni(self) -> bool:
        """Int8 dot products in one instruction (AVX512-VNNI or AVX-VNNI)."""
        return bool(self.flags & {"avx512_vnni", "avx512vnni", "avx_vnni"})

    @property
    def amx(self) -> bool:
        """Intel AMX tiles (int8 and bf16 matrix multiplies)."""
        return bool(self.flags & {"amx_int8", "amx_bf16", "amx_tile"})

    def relevant_flags(self) -> list[str]:
        """The flags that change which kernels run (what a verdict depends on), sorted."""
        wanted = {"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512vnni",
                  "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve"}
        return sorted(self.flags & wanted)

    def describe(self) -> dict[str, object]:
        """``{"model", "machine", "flags"}`` for the logs, the verdicts and the collection metadata."""
        return {"model": self.model, "machine": self.machine, "flags": self.relevant_flags()}


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's CPU, read from ``/proc/cpuinfo`` once per process."""
    model, flags = "", frozenset[str]()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:  # x86, arm
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return CpuInfo(model=model or platform.processor() or "unknown", machine=platform.machine().lower(), flags=flags)


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 inference is fast."""
    return cpu_info().bf16


def cpu_int8_kernels() -> str:
    """The best int8 matrix kernels of this CPU: ``amx``, ``vnni``, ``avx512``, ``avx2``, ``arm64`` or ``none``."""
    info = cpu_info()
    if info.machine in ("arm64", "aarch64"):
        return "arm64"
    if info.amx:
        return "amx"
    if info.vnni:
        return "vnni"
    if "avx512f" in info.flags:
        return "avx512"
    if "avx2" in info.flags:
        return "avx2"
    return "none"


def onnx_quantization_preset() -> str:
    """The ONNX Runtime dynamic-quantization preset of this CPU (``avx512_vnni``, ``avx512``, ``avx2``, ``arm64``)."""
    info = cpu_info()
    if info.machine in ("arm64", "aarch64"):
        return "arm64"
    if info.flags & {"avx512_vnni", "avx512vnni"}:
        return "avx512_vnni"
    if "avx512f" in info.flags:
        return "avx512"
    return "avx2"


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu`` (imports torch: call it only when a model is loaded)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

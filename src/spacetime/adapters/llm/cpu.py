"""Which llama.cpp CPU paths the embedded model may take on this machine: a PURE decision over CPU features.

llama.cpp's CPU backend can place weights in "extra buffer types": repacked layouts served by special matrix
kernels (AMX tiles on Sapphire Rapids and newer Xeons, interleaved AVX2/AVX-512/NEON layouts elsewhere). A plain
``pip install llama-cpp-python`` builds every CPU variant and picks one at run time from the CPU, so the machine,
not the build, decides whether the AMX path is taken. That path crashes on our SmolLM2 Q4_1 weights
(``ggml_backend_amx_mul_mat``, ggml-org/llama.cpp#20824) and computes Q4_0/Q4_1 wrongly (ggml-org/llama.cpp#16315),
so the embedded model never takes it: :func:`plan_load` turns the CPU's features into the one llama.cpp model
parameter that matters, ``use_extra_bufts``. Reading ``/proc/cpuinfo`` and llama.cpp's system info happens at the
edge (:func:`read_cpu`); everything else here is a pure function tested against sample flag sets.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

AMX_FLAGS = frozenset({"amx_int8", "amx_tile", "amx_bf16", "amx_fp16", "amx_complex"})
"""``/proc/cpuinfo`` flags (and llama.cpp build features, lower-cased) that mean "the AMX extra buffer may be used"."""


class CpuArch(StrEnum):
    X86_64 = "x86_64"
    AARCH64 = "aarch64"
    OTHER = "other"


class ExtraBuffers(StrEnum):
    """The operator's choice for llama.cpp's extra buffer types (``SPACETIME_LLAMA_EXTRA_BUFFERS``)."""

    AUTO = "auto"
    """Decide from the CPU (the default): off where AMX is present, on elsewhere."""
    ON = "on"
    """Allow them even with AMX (for measurements; may crash on AMX CPUs)."""
    OFF = "off"
    """Never use them."""


@dataclass(frozen=True, slots=True)
class CpuFeatures:
    arch: CpuArch
    flags: frozenset[str]
    """Lower-cased feature names: ``/proc/cpuinfo`` flags, plus the features llama.cpp reports for its build."""


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How the embedded model is loaded on this machine."""

    use_extra_bufts: bool
    """llama.cpp's ``llama_model_params.use_extra_bufts``: may weights go to repacked extra buffers (AMX, …)?"""
    reason: str
    """One line saying why, for logs and ``docs/benchmarks.md``."""


def arch_of(machine: str) -> CpuArch:
    """``platform.machine()`` → :class:`CpuArch`."""
    name = machine.strip().lower()
    if name in {"x86_64", "amd64", "x64"}:
        return CpuArch.X86_64
    if name in {"aarch64", "arm64", "armv8", "armv8l"}:
        return CpuArch.AARCH64
    return CpuArch.OTHER


def parse_cpuinfo(text: str) -> frozenset[str]:
    """The feature flags of ``/proc/cpuinfo`` text: the ``flags`` lines (x86) or ``Features`` lines (Arm), every
    processor's (a hybrid CPU could list different ones), lower-cased."""
    found: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in {"flags", "features"}:
            found.update(value.lower().split())
    return frozenset(found)


_SYSTEM_FEATURE = re.compile(r"([A-Za-z0-9_]+)\s*=\s*1\b")


def parse_system_info(text: str) -> frozenset[str]:
    """Features llama.cpp reports as on (``llama_print_system_info()``: ``CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 1
    | …``), lower-cased."""
    return frozenset(match.group(1).lower() for match in _SYSTEM_FEATURE.finditer(text))


def parse_extra_buffers(value: str | None) -> ExtraBuffers:
    """The ``SPACETIME_LLAMA_EXTRA_BUFFERS`` value (unset or empty: ``auto``). Raises ``ValueError`` naming the
    choices for anything else."""
    text = (value or "").strip().lower()
    if not text:
        return ExtraBuffers.AUTO
    try:
        return ExtraBuffers(text)
    except ValueError:
        choices = ", ".join(e.value for e in ExtraBuffers)
        raise ValueError(f"SPACETIME_LLAMA_EXTRA_BUFFERS must be one of {choices}, not {value!r}") from None


def plan_load(cpu: CpuFeatures, choice: ExtraBuffers = ExtraBuffers.AUTO) -> LoadPlan:
    """Whether llama.cpp may use extra buffer types for the embedded model on ``cpu``.

    ``auto``: never on a CPU (or a llama.cpp build) with AMX — the AMX path crashes and miscomputes our weights;
    elsewhere allowed, since the AVX2/AVX-512/NEON repacks are correct and measured faster (docs/benchmarks.md).
    An unknown architecture keeps llama.cpp's default (allowed): only AMX is known to be broken.
    """
    amx = sorted(cpu.flags & AMX_FLAGS)
    if choice is ExtraBuffers.OFF:
        return LoadPlan(False, "extra buffer types off (SPACETIME_LLAMA_EXTRA_BUFFERS=off)")
    if choice is ExtraBuffers.ON:
        warning = f"; AMX present ({', '.join(amx)}): may crash" if amx else ""
        return LoadPlan(True, f"extra buffer types on (SPACETIME_LLAMA_EXTRA_BUFFERS=on){warning}")
    if amx:
        return LoadPlan(False, f"AMX present ({', '.join(amx)}): llama.cpp's AMX extra buffer is avoided")
    return LoadPlan(True, f"no AMX on this {cpu.arch.value} CPU: llama.cpp's repacked extra buffers allowed")


def read_cpu(system_info: str = "") -> CpuFeatures:
    """This machine's features: ``/proc/cpuinfo`` (empty where there is none) plus llama.cpp's ``system_info``."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return CpuFeatures(arch_of(platform.machine()), parse_cpuinfo(text) | parse_system_info(system_info))

"""The embedded model's load plan: a pure decision over CPU feature sets (no AMX hardware needed), and the words
a dead model host is described with."""

from __future__ import annotations

import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacetime.adapters.llm.cpu import (
    AMX_FLAGS,
    CpuArch,
    CpuFeatures,
    ExtraBuffers,
    arch_of,
    parse_cpuinfo,
    parse_extra_buffers,
    parse_system_info,
    plan_load,
)
from spacetime.adapters.llm.host import HostCrash, crash_message, describe_exit, restarts_from_env
from spacetime.errors import ConfigError

# Abridged /proc/cpuinfo of real machines (two processors each: every one's flags are read).
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c bmi2 avx512f avx512dq avx512bw avx512vl \
avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8 arch_lbr
processor\t: 1
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c bmi2 avx512f avx512dq avx512bw avx512vl \
avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8 arch_lbr
"""
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes avx f16c \
bmi1 avx2 bmi2 rdseed adx sha_ni
"""
SKYLAKE_AVX512 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512dq avx512cd avx512bw avx512vl
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
"""
SYSTEM_INFO_AMX = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 | "
SYSTEM_INFO_AVX2 = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | REPACK = 1 | "


def cpu(text: str, machine: str = "x86_64", system_info: str = "") -> CpuFeatures:
    return CpuFeatures(arch_of(machine), parse_cpuinfo(text) | parse_system_info(system_info))


def test_cpuinfo_flags_are_read_from_every_processor_and_lower_cased() -> None:
    flags = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert {"amx_int8", "amx_tile", "avx512f", "avx2"} <= flags
    assert "genuineintel" not in flags and "intel(r)" not in flags  # only the flags lines
    assert parse_cpuinfo("processor : 0\nflags : A B\nprocessor : 1\nflags : C\n") == {"a", "b", "c"}
    assert "asimd" in parse_cpuinfo(GRAVITON)
    assert parse_cpuinfo("") == frozenset()


def test_system_info_reports_only_features_that_are_on() -> None:
    assert parse_system_info(SYSTEM_INFO_AMX) >= {"amx_int8", "avx2", "repack"}
    assert parse_system_info("CPU : AVX2 = 1 | AMX_INT8 = 0 | ") == {"avx2"}


def test_amx_cpu_never_takes_the_extra_buffer_path() -> None:
    plan = plan_load(cpu(SAPPHIRE_RAPIDS))
    assert plan.use_extra_bufts is False and "amx_int8" in plan.reason


def test_amx_reported_by_llama_cpp_alone_also_counts() -> None:
    """A VM may hide AMX from /proc/cpuinfo while llama.cpp's CPU variant has it (or the reverse)."""
    assert plan_load(cpu(EPYC_AVX2, system_info=SYSTEM_INFO_AMX)).use_extra_bufts is False


@pytest.mark.parametrize(
    ("text", "machine", "info"),
    [(EPYC_AVX2, "x86_64", SYSTEM_INFO_AVX2), (SKYLAKE_AVX512, "x86_64", ""), (GRAVITON, "aarch64", ""),
     ("", "riscv64", "")],
    ids=["avx2-only", "avx512-no-amx", "arm64", "unknown-arch"],
)  # fmt: skip
def test_cpus_without_amx_keep_the_repacked_buffers(text: str, machine: str, info: str) -> None:
    plan = plan_load(cpu(text, machine, info))
    assert plan.use_extra_bufts is True and "no AMX" in plan.reason


def test_operator_override() -> None:
    amx = cpu(SAPPHIRE_RAPIDS)
    assert plan_load(amx, ExtraBuffers.ON).use_extra_bufts is True
    assert "may crash" in plan_load(amx, ExtraBuffers.ON).reason
    assert plan_load(cpu(EPYC_AVX2), ExtraBuffers.OFF).use_extra_bufts is False
    assert parse_extra_buffers(None) is ExtraBuffers.AUTO and parse_extra_buffers(" OFF ") is ExtraBuffers.OFF
    with pytest.raises(ValueError, match="auto, on, off"):
        parse_extra_buffers("sometimes")


@given(st.frozensets(st.sampled_from(sorted(AMX_FLAGS | {"avx2", "avx512f", "sse4_2", "asimd", "fma"}))),
       st.sampled_from(list(CpuArch)))  # fmt: skip
def test_auto_plan_is_off_exactly_when_amx_is_present(flags: frozenset[str], arch: CpuArch) -> None:
    plan = plan_load(CpuFeatures(arch, flags))
    assert plan.use_extra_bufts is (not (flags & AMX_FLAGS))
    assert plan == plan_load(CpuFeatures(arch, flags))  # deterministic
    assert plan_load(CpuFeatures(arch, flags), ExtraBuffers.OFF).use_extra_bufts is False


def test_arch_names() -> None:
    assert arch_of("x86_64") is CpuArch.X86_64 and arch_of("AMD64") is CpuArch.X86_64
    assert arch_of("arm64") is CpuArch.AARCH64 and arch_of("aarch64") is CpuArch.AARCH64
    assert arch_of("ppc64le") is CpuArch.OTHER


def test_exit_statuses_in_words() -> None:
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV (a crash in llama.cpp)"
    assert describe_exit(-signal.SIGKILL).startswith("killed by SIGKILL (out of memory")
    assert describe_exit(-signal.SIGILL).startswith("killed by SIGILL")
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(None) == "stopped answering"


def test_crash_message_is_one_line_with_what_happened_and_what_to_do() -> None:
    crash = HostCrash(42, describe_exit(-signal.SIGSEGV), "generating", "/tmp/host.log")
    line = crash_message(crash, 1)
    assert "\n" not in line
    for needle in ("pid 42", "SIGSEGV", "while generating", "after 1 restart;", "run the same command again",
                   "SPACETIME_LLAMA_EXTRA_BUFFERS=off", "/tmp/host.log"):  # fmt: skip
        assert needle in line, needle
    assert "restart" not in crash_message(HostCrash(1, "killed by SIGKILL", "embedding", None), 0).split(";")[0]


def test_restart_budget_from_the_environment() -> None:
    assert restarts_from_env(None) == 1 and restarts_from_env("") == 1
    assert restarts_from_env("0") == 0 and restarts_from_env("3") == 3
    for bad in ("-1", "many", "1.5"):
        with pytest.raises(ConfigError, match="SPACETIME_MODEL_HOST_RESTARTS"):
            restarts_from_env(bad)

"""The machine a benchmark ran on, for the JSON/CSV/README: timings mean nothing without it."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

_CPU_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def _cpuinfo() -> tuple[str, list[str]]:
    """The CPU model and the SIMD features that decide the matmul peak (first core's entry of /proc/cpuinfo)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    present = set(fields.get("flags", "").split())
    model = fields.get("model name") or platform.processor() or "unknown"
    return model, [f for f in _CPU_FLAGS_OF_INTEREST if f in present]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def describe(device: str, threads: int) -> dict:
    model, flags = _cpuinfo()
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return {
        "cpu": model,
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "device": device,
        "gpu": gpu,
        "cuda": torch.version.cuda if gpu else None,
        "cudnn": torch.backends.cudnn.version() if gpu else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "fastrnn_commit": _git_commit(),
        # Other work on a shared machine skews timings (a busy core stalls every OpenMP barrier): say how busy.
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }

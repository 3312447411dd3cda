"""Medians of a call's wall time: torch.utils.benchmark on CPU, CUDA events after warm-up on a GPU."""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import torch
from torch.utils import benchmark
from torch.utils.benchmark.utils.common import set_torch_threads

PEAK_N = 2048  # the side of the square matmul whose FLOP rate is the machine's peak


@dataclasses.dataclass(frozen=True)
class Timing:
    median_s: float
    iqr_s: float
    runs: int  # how many measurements the median is over


def time_call(fn: Callable[[], object], device: str, threads: int, min_run_time: float) -> Timing:
    with set_torch_threads(threads):
        _warm_up(fn, device, min_run_time)
    if device == "cpu":
        # blocked_autorange sizes its blocks, then times blocks for min_run_time.
        m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(
            min_run_time=min_run_time)
        return Timing(m.median, m.iqr, len(m.times))
    return _time_cuda(fn, min_run_time)


def _warm_up(fn: Callable[[], object], device: str, min_run_time: float) -> None:
    """At least 3 calls and a fifth of the budget: oneDNN builds its primitives on the first two calls
    (~100 ms each), cuDNN/cuBLAS pick algorithms, Triton compiles, the allocator fills its cache."""
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    sync()
    start, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - start < 0.2 * min_run_time:
        fn()
        calls += 1
    sync()


def _time_cuda(fn: Callable[[], object], min_run_time: float) -> Timing:
    """One pair of CUDA events around each call; as many calls as fit min_run_time (5 to 1000)."""
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    per_call = time.perf_counter() - start
    reps = max(5, min(1000, int(min_run_time / per_call)))
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for begin, end in events:
        begin.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    times = [begin.elapsed_time(end) / 1e3 for begin, end in events]
    q1, _, q3 = statistics.quantiles(times, n=4)
    return Timing(statistics.median(times), q3 - q1, reps)


def peak_flops(device: str, dtype: torch.dtype, threads: int, min_run_time: float) -> float:
    """FLOP/s of ``torch.mm`` of two PEAK_N x PEAK_N matrices of ``dtype``: the machine's practical peak."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(PEAK_N, PEAK_N, generator=gen).to(device, dtype) for _ in range(2))
    out = torch.empty(PEAK_N, PEAK_N, device=device, dtype=dtype)
    timing = time_call(lambda: torch.mm(a, b, out=out), device, threads, min_run_time)
    return 2 * PEAK_N**3 / timing.median_s

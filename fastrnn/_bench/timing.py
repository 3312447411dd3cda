"""Per-call wall times: torch.utils.benchmark on CPU, CUDA events after warm-up on a GPU.

Implementations being compared are timed in interleaved rounds (A B A B ...) and each one's
median is over all its rounds: on a shared machine the load drifts, and interleaving spreads the
drift over every implementation instead of biasing whichever ran during a busy spell.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import torch
from torch.utils import benchmark
from torch.utils.benchmark.utils.common import set_torch_threads

PEAK_N = 2048  # the side of the square matmul whose FLOP rate is the machine's peak
PEAK_FLOPS = 2 * PEAK_N**3
ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class Timing:
    median_s: float
    iqr_s: float
    runs: int  # how many measurements the median is over (blocks of calls on CPU, calls on a GPU)


def time_calls(fns: dict[str, Callable[[], object]], device: str, threads: int,
               min_run_time: float) -> dict[str, Timing]:
    """Each function's per-call median over ``min_run_time`` seconds of measurement, in ROUNDS interleaved rounds."""
    with set_torch_threads(threads):
        for fn in fns.values():
            _warm_up(fn, device, min_run_time)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            samples[name] += _sample(fn, device, threads, min_run_time / ROUNDS)
    return {name: _summary(times) for name, times in samples.items()}


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


def _sample(fn: Callable[[], object], device: str, threads: int, run_time: float) -> list[float]:
    if device == "cpu":
        # blocked_autorange sizes blocks so timer overhead vanishes, then times blocks for run_time.
        m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(
            min_run_time=run_time)
        return list(m.times)
    return _sample_cuda(fn, run_time)


def _sample_cuda(fn: Callable[[], object], run_time: float) -> list[float]:
    """One pair of CUDA events around each call; as many calls as fit run_time (5 to 1000)."""
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    reps = max(5, min(1000, int(run_time / (time.perf_counter() - start))))
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for begin, end in events:
        begin.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [begin.elapsed_time(end) / 1e3 for begin, end in events]


def _summary(times: list[float]) -> Timing:
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return Timing(statistics.median(times), q3 - q1, len(times))


def peak_call(device: str) -> Callable[[], object]:
    """A float32 ``torch.mm`` of two PEAK_N x PEAK_N matrices (PEAK_FLOPS of work): the machine's practical
    peak, one yardstick for every dtype (issue 6's definition; a float16 matmul on a CPU takes seconds).
    The sweep times it in the same interleaved rounds as each row, so a row's efficiency compares it
    with the peak of the same minutes: on a shared machine the peak drifts by up to 2x within a run."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(PEAK_N, PEAK_N, generator=gen).to(device) for _ in range(2))
    out = torch.empty(PEAK_N, PEAK_N, device=device)
    return lambda: torch.mm(a, b, out=out)

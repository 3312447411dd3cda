"""Runs the sweep: per case, torch.nn and every fastrnn backend with the same weights and inputs, back to back."""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from tqdm import tqdm

from .cases import MODES, Case, build_fastrnn, build_reference, flops, make_inputs, runner
from .timing import time_call

REFERENCE = "torch.nn"


@dataclasses.dataclass
class Result:
    """One timing: a case, a mode (fwd / fwdbwd) and an implementation (torch.nn or a fastrnn backend)."""
    cell: str  # the variant: rnn_tanh, rnn_relu, lstm, lstm_proj, gru
    T: int
    B: int
    I: int  # noqa: E741
    H: int
    proj: int
    layers: int
    bidirectional: bool
    dtype: str
    device: str
    mode: str
    impl: str  # "torch.nn" or the fastrnn backend's name
    median_ms: float = float("nan")
    iqr_ms: float = float("nan")
    runs: int = 0
    flops: int = 0
    gflops_per_s: float = float("nan")
    efficiency: float = float("nan")  # FLOP rate / the same-dtype torch.mm peak of this run
    speedup: float = float("nan")  # torch.nn median / this median
    max_abs_diff: float = float("nan")  # against torch.nn: output (fwd) or input gradient (fwdbwd)
    error: str = ""

    @property
    def case_key(self) -> tuple:
        return (self.cell, self.T, self.B, self.I, self.H, self.proj, self.layers, self.bidirectional, self.dtype)


def _result(case: Case, device: str, mode: str, impl: str) -> Result:
    return Result(case.variant, case.T, case.B, case.I, case.H, case.proj, case.layers, case.bidirectional,
                  case.dtype, device, mode, impl, flops=flops(case, mode))


def _error(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def run_sweep(cases: list[Case], backends: Callable[[Case], list[str]], device: str, threads: int,
              min_run_time: float, peaks: dict[str, float], progress: bool = True) -> list[Result]:
    """``backends(case)`` lists the fastrnn backends to time beside torch.nn for that case."""
    total = sum((1 + len(backends(c))) * len(MODES) for c in cases)
    results = []
    with tqdm(total=total, desc="bench", unit="timing", disable=None if progress else True, dynamic_ncols=True) as bar:
        for case in cases:
            torch.manual_seed(0)
            reference = build_reference(case, device)
            x, grad_out = make_inputs(case, device)
            modules: dict[str, torch.nn.Module | Exception] = {}
            for name in backends(case):
                try:
                    modules[name] = build_fastrnn(case, device, name, reference)
                except Exception as e:  # a backend that fails is reported in its row; the sweep goes on
                    modules[name] = e
            for mode in MODES:
                bar.set_postfix_str(f"{case.label} {mode}")
                ref = _result(case, device, mode, REFERENCE)
                ref_fn = runner(reference, mode, x, grad_out)
                expected = ref_fn()
                _time(ref, ref_fn, device, threads, min_run_time, peaks[case.dtype])
                results.append(ref)
                bar.update(1)
                for name, module in modules.items():
                    row = _result(case, device, mode, name)
                    if isinstance(module, Exception):
                        row.error = _error(module)
                    else:
                        try:
                            fn = runner(module, mode, x, grad_out)
                            row.max_abs_diff = (fn().float() - expected.float()).abs().max().item()
                            _time(row, fn, device, threads, min_run_time, peaks[case.dtype])
                            row.speedup = ref.median_ms / row.median_ms
                        except Exception as e:
                            row.error = _error(e)
                    results.append(row)
                    bar.update(1)
    return results


def _time(row: Result, fn: Callable[[], object], device: str, threads: int, min_run_time: float,
          peak: float) -> None:
    timing = time_call(fn, device, threads, min_run_time)
    row.median_ms, row.iqr_ms, row.runs = timing.median_s * 1e3, timing.iqr_s * 1e3, timing.runs
    row.gflops_per_s = row.flops / timing.median_s / 1e9
    row.efficiency = row.flops / timing.median_s / peak

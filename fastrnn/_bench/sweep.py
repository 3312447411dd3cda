"""Runs the sweep: per case, torch.nn and every fastrnn backend with the same weights and inputs, back to back."""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from tqdm import tqdm

from .cases import MODES, Case, build_fastrnn, build_reference, flops, make_inputs, runner
from .timing import PEAK_FLOPS, peak_call, time_calls

REFERENCE = "torch.nn"
PEAK = "peak"  # the peak matmul, timed beside each case and mode


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
    efficiency: float = float("nan")  # FLOP rate / peak_gflops_per_s (any dtype)
    peak_gflops_per_s: float = float("nan")  # float32 torch.mm peak, timed in the same rounds as this row
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
              min_run_time: float, progress: bool = True) -> list[Result]:
    """``backends(case)`` lists the fastrnn backends to time beside torch.nn for that case. Each case and
    mode is timed in interleaved rounds with the peak matmul, which its rows' efficiency divides by."""
    peak_fn = peak_call(device)
    total = sum((1 + len(backends(c))) * len(MODES) for c in cases)
    results = []
    with tqdm(total=total, desc="bench", unit="timing", disable=not progress, mininterval=1.0, dynamic_ncols=True) as bar:
        for case in cases:
            torch.manual_seed(0)
            reference = build_reference(case, device)
            x, grad_out = make_inputs(case, device)
            modules: dict[str, torch.nn.Module | Exception] = {}
            for name in backends(case):
                try:
                    modules[name] = build_fastrnn(case, device, name, reference)
                except Exception as e:  # goes in the backend's rows (_prepare)
                    modules[name] = e
            for mode in MODES:
                bar.set_postfix_str(f"{case.label} {mode}")
                rows, fns = _prepare(case, device, mode, reference, modules, x, grad_out)
                timings = time_calls({**fns, PEAK: peak_fn}, device, threads, min_run_time)
                peak = PEAK_FLOPS / timings.pop(PEAK).median_s
                for name, timing in timings.items():
                    row = rows[name]
                    row.median_ms, row.iqr_ms, row.runs = timing.median_s * 1e3, timing.iqr_s * 1e3, timing.runs
                    row.gflops_per_s = row.flops / timing.median_s / 1e9
                    row.peak_gflops_per_s = peak / 1e9
                    row.efficiency = row.flops / timing.median_s / peak
                    row.speedup = rows[REFERENCE].median_ms / row.median_ms if name != REFERENCE else float("nan")
                results += rows.values()
                bar.update(len(rows))
    return results


def _prepare(case: Case, device: str, mode: str, reference: torch.nn.Module,
             modules: dict[str, torch.nn.Module | Exception], x: torch.Tensor, grad_out: torch.Tensor,
             ) -> tuple[dict[str, Result], dict[str, Callable[[], torch.Tensor]]]:
    """The rows of one case and mode, and the calls to time: torch.nn first, then each fastrnn backend
    whose module was built and whose first call ran (its difference to torch.nn goes in its row)."""
    rows = {REFERENCE: _result(case, device, mode, REFERENCE)}
    fns = {REFERENCE: runner(reference, mode, x, grad_out)}
    expected = fns[REFERENCE]().float()
    for name, module in modules.items():
        rows[name] = _result(case, device, mode, name)
        if isinstance(module, Exception):
            rows[name].error = _error(module)
            continue
        try:
            fn = runner(module, mode, x, grad_out)
            rows[name].max_abs_diff = (fn().float() - expected).abs().max().item()
            fns[name] = fn
        except Exception as e:  # a backend that fails is reported in its rows; the sweep goes on
            rows[name].error = _error(e)
    return rows, fns

"""Benchmark of fastrnn's RNN/LSTM/GRU against torch.nn: ``python -m fastrnn.bench --help``.

Times forward and forward+backward of every fastrnn backend that can run here beside torch.nn
(cuDNN on a GPU, PyTorch's native/oneDNN path on CPU), with the same weights and inputs, and
reports medians, speedups, and each shape's efficiency against the machine's matmul peak measured
in the same run. Writes bench.json, bench.csv and bench.png to --out; --write-readme also writes
benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import shlex
import sys
import warnings
from pathlib import Path

import torch

from .backends import Backend, available_backends, triton_interpreted, why_not
from ._bench import report
from ._bench.cases import CELLS, DTYPES, QUICK_SHAPE, STANDARD_SHAPES, Case, default_sweep, quick_sweep
from ._bench.machine import describe
from ._bench.sweep import run_sweep
from ._bench.targets import check

DEFAULT_SHAPE = STANDARD_SHAPES[0]
# Not benchmarked: the emulator is a test facility; fastrnn's plain-PyTorch loop only on request (slow).
EXCLUDED = {Backend.CUDA_EMULATED.value: "the CUDA emulator is a test facility, not a backend to benchmark"}
OPT_IN = {Backend.TORCH.value}
REPO_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SHAPE_FLAGS = ("cell", "T", "B", "I", "H", "layers", "bidirectional", "proj", "dtype")


def _list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",") if v]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}")
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m fastrnn.bench", description=__doc__.split("\n\n")[1],
        epilog="Any of --cell/--T/--B/--I/--H/--layers/--bidirectional/--proj/--dtype replaces the default "
               "sweep by the product of the given values (unset dimensions: T,B,I,H = 100,16,128,128, "
               "or 6,2,16,16 with --quick). Lists are comma-separated.")
    p.add_argument("--cell", type=_list(str), help=f"cells: {','.join(CELLS)} (default: all)")
    for dim in ("T", "B", "I", "H"):
        p.add_argument(f"--{dim}", type=_list(int), metavar="N[,N...]")
    p.add_argument("--layers", type=_list(int), metavar="N[,N...]")
    p.add_argument("--bidirectional", action="store_true", default=None)
    p.add_argument("--proj", type=int, nargs="?", const=-1, metavar="P",
                   help="LSTM proj_size (without a value: H//2); applies to the lstm cells")
    p.add_argument("--dtype", type=_list(str), help=f"dtypes: {','.join(DTYPES)} (default: float32)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--backends", type=_list(str),
                   help="fastrnn backends to time beside torch.nn (default: every available one but torch)")
    p.add_argument("--threads", type=int, help="CPU threads (default: 2 on cpu)")
    p.add_argument("--min-run-time", type=float, help="seconds of measurement per timing (default 1, --quick 0.02)")
    p.add_argument("--out", type=Path, help="output folder (default: bench_out, or results/ beside the README "
                                           "with --write-readme)")
    p.add_argument("--quick", action="store_true", help="tiny shapes and short timings: a smoke test of seconds")
    p.add_argument("--write-readme", type=Path, nargs="?", const=REPO_BENCHMARKS / "README.md", metavar="PATH",
                   help=f"write the table, machine and command to PATH (default {REPO_BENCHMARKS / 'README.md'})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        _resolve(args)
    except ValueError as e:
        p.error(str(e))
    return args


def _resolve(args: argparse.Namespace) -> None:
    """Fills in defaults and checks the combination; a ValueError names the offending argument."""
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"--device must be cpu or cuda[:N], got {args.device!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available")
    if args.threads is None:
        args.threads = 2 if device.type == "cpu" else torch.get_num_threads()
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.min_run_time is None:
        args.min_run_time = 0.02 if args.quick else 1.0
    if args.min_run_time <= 0:
        raise ValueError(f"--min-run-time must be > 0, got {args.min_run_time}")
    if args.write_readme and not args.write_readme.parent.is_dir():
        raise ValueError(f"--write-readme: folder {args.write_readme.parent} does not exist")
    if args.out is None:
        args.out = args.write_readme.parent / "results" if args.write_readme else Path("bench_out")
    args.cases = _cases(args)
    args.backends = _backends(args.backends, args.device)


def _cases(args: argparse.Namespace) -> list[Case]:
    if all(getattr(args, flag) is None for flag in SHAPE_FLAGS):
        return quick_sweep() if args.quick else default_sweep()
    shape = QUICK_SHAPE if args.quick else DEFAULT_SHAPE
    cells = args.cell or list(CELLS)
    if args.proj is not None and "lstm" not in cells:
        raise ValueError("--proj applies to the lstm cell, which --cell leaves out")
    dims = [getattr(args, d) or [v] for d, v in zip("TBIH", shape)]
    cases = []
    for cell, T, B, I, H, layers, dtype in itertools.product(  # noqa: E741
            cells, *dims, args.layers or [1], args.dtype or ["float32"]):
        proj = (H // 2 if args.proj == -1 else args.proj) if cell == "lstm" and args.proj else 0
        cases.append(Case(cell, T, B, I, H, proj, layers, bool(args.bidirectional), dtype))
    return cases


def _backends(requested: list[str] | None, device: str) -> list[str]:
    if requested is None:
        # The available backends that run float32 on this device (Triton on a CPU is its interpreter: a test
        # facility too); _runnable then says which of them cannot run another dtype of the sweep.
        probe = torch.empty(0, device=device)
        return [b for b in available_backends() if b not in EXCLUDED and b not in OPT_IN
                and why_not(Backend(b), probe) is None and not (b == Backend.TRITON.value and probe.is_cpu)]
    for name in requested:
        if name in EXCLUDED:
            raise ValueError(f"--backends: {name}: {EXCLUDED[name]}")
        if name not in {b.value for b in Backend}:
            raise ValueError(f"--backends: unknown backend {name!r}; expected some of "
                             f"{', '.join(b.value for b in Backend if b.value not in EXCLUDED)}")
    return list(dict.fromkeys(requested))


def _runnable(backends: list[str], device: str, cases: list[Case]) -> dict[str, list[str]]:
    """Per dtype, the backends that can run it here; says on stderr which are left out and why."""
    out = {}
    for dtype in dict.fromkeys(c.dtype for c in cases):
        probe = torch.empty(0, device=device, dtype=DTYPES[dtype])
        out[dtype] = []
        for name in backends:
            reason = why_not(Backend(name), probe)
            if reason is None:
                out[dtype].append(name)
            else:
                print(f"fastrnn.bench: not timing backend {name!r} for {dtype} on {device}: {reason}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if triton_interpreted():
        print("fastrnn.bench: TRITON_INTERPRET=1 is set: Triton timings are the interpreter's", file=sys.stderr)
    torch.set_num_threads(args.threads)
    if torch.device(args.device).index is not None:
        torch.cuda.set_device(args.device)  # CUDA events and synchronize act on the current device
    runnable = _runnable(args.backends, args.device, args.cases)
    machine = describe(args.device, args.threads)
    meta = {"command": "python -m fastrnn.bench " + shlex.join(argv),
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine,
            "settings": {"device": args.device, "threads": args.threads, "min_run_time_s": args.min_run_time,
                         "backends": args.backends}}
    with warnings.catch_warnings():
        # torch.nn.LSTM with proj_size on CPU says once that oneDNN cannot run it: known, not news per run.
        warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
        results = run_sweep(args.cases, lambda c: runnable[c.dtype], args.device, args.threads,
                            args.min_run_time, progress=not args.no_progress)
    meta["peak_flops"] = dict(zip(("lowest", "median", "highest"), report.peak_range(results)))
    checks = check(results)

    print("\n".join(report.machine_lines(machine, report.peak_range(results))))
    print()
    print(report.render_text(*report.table(results)))
    if checks:
        print("\nTargets (issue 6; informational):")
        print(report.render_text(*report.targets_table(checks)))
    failed = report.errors(results)
    if failed:
        print("\nErrors:\n" + "\n".join(failed))

    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "bench.json", meta, results, checks)
    report.write_csv(args.out / "bench.csv", machine, results)
    report.write_plot(args.out / "bench.png", results, f"fastrnn vs torch.nn on {machine['gpu'] or machine['cpu']}"
                      f", {args.threads} threads")
    written = [args.out / n for n in ("bench.json", "bench.csv", "bench.png")]
    if args.write_readme:
        report.write_readme(args.write_readme, meta, results, checks, args.out)
        written.append(args.write_readme)
    print("\nwrote " + ", ".join(map(str, written)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

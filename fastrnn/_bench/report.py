"""The benchmark's outputs: printed and markdown tables, JSON, CSV, the speedup plot, benchmarks/README.md."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import statistics
from pathlib import Path

from .sweep import REFERENCE, Result
from .targets import MODE_NAMES, Check
from .timing import PEAK_N

MACHINE_COLUMNS = ("cpu", "gpu", "torch", "threads")


def display(impl: str) -> str:
    """A fastrnn backend as tables and plots name it: "fastrnn cpu" (a bare "torch" reads like torch.nn)."""
    return impl if impl == REFERENCE else f"fastrnn {impl}"


def _ms(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.0f}" if value >= 1000 else f"{value:.3g}"


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if math.isfinite(value) else "-"


def _fraction(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.2f}" if value >= 0.01 else "<0.01"


def table(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    """One line per case and mode: torch.nn's median and efficiency, then each backend's median, speedup, efficiency."""
    backends = list(dict.fromkeys(r.impl for r in results if r.impl != REFERENCE))
    header = ["cell", "T,B,I,H", "P", "L", "dir", "dtype", "mode", f"{REFERENCE} ms", "eff"]
    for b in backends:
        header += [f"{display(b)} ms", "x", "eff"]
    lines: dict[tuple, list[str]] = {}
    for r in results:
        key = (*r.case_key, r.mode)
        if key not in lines:
            lines[key] = [r.cell, f"{r.T},{r.B},{r.I},{r.H}", str(r.proj or "-"), str(r.layers),
                          "bi" if r.bidirectional else "uni", r.dtype, MODE_NAMES[r.mode]] + ["-"] * (len(header) - 7)
        line = lines[key]
        if r.impl == REFERENCE:
            line[7:9] = [_ms(r.median_ms), _fraction(r.efficiency)]
        else:
            at = 9 + 3 * backends.index(r.impl)
            line[at:at + 3] = ["error", "-", "-"] if r.error else [_ms(r.median_ms), _ratio(r.speedup),
                                                                      _fraction(r.efficiency)]
    return header, list(lines.values())


def render_text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) for c, w in zip(cells, widths))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def render_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def targets_table(checks: list[Check]) -> tuple[list[str], list[list[str]]]:
    return ["target (cpu backend, float32)", "measured", "status"], [[c.target, c.measured, c.status] for c in checks]


def errors(results: list[Result]) -> list[str]:
    return [f"{display(r.impl)}, {_label(r)} {MODE_NAMES[r.mode]}: {r.error}" for r in results if r.error]


def write_json(path: Path, meta: dict, results: list[Result], checks: list[Check]) -> None:
    doc = dict(meta, results=[dataclasses.asdict(r) for r in results], targets=[dataclasses.asdict(c) for c in checks])
    # NaN (an errored row) is not JSON: write null.
    path.write_text(json.dumps(_nan_to_none(doc), indent=1) + "\n")


def _nan_to_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def write_csv(path: Path, machine: dict, results: list[Result]) -> None:
    fields = [f.name for f in dataclasses.fields(Result)] + list(MACHINE_COLUMNS)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results:
            writer.writerow(dict(dataclasses.asdict(r), **{k: machine[k] for k in MACHINE_COLUMNS}))


def write_plot(path: Path, results: list[Result], title: str) -> None:
    """Speedup over torch.nn per shape: one panel per mode, one bar per fastrnn backend, a line at 1x."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r.impl != REFERENCE]
    backends = list(dict.fromkeys(r.impl for r in rows))
    labels = list(dict.fromkeys(_label(r) for r in rows))
    width = 0.8 / max(1, len(backends))
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.45 * len(labels) + 2), 8), sharex=True, squeeze=False)
    for ax, mode in zip(axes[:, 0], ("fwd", "fwdbwd")):
        for i, b in enumerate(backends):
            speed = {_label(r): r.speedup for r in rows if r.impl == b and r.mode == mode}
            xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(labels))]
            # Bars grow from 1x, up when faster, down when slower; a log scale puts 0.5x and 2x equally far.
            ax.bar(xs, [speed.get(lab, float("nan")) - 1 for lab in labels], width, bottom=1, label=display(b))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log", base=2)
        shown = [r.speedup for r in rows if r.mode == mode and math.isfinite(r.speedup) and r.speedup > 0]
        if shown:  # log-scale autoscaling cut the tallest bar; an octave above it holds the legend
            ax.set_ylim(min(min(shown), 1.0) / 1.25, max(max(shown), 1.0) * 2)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}x"))
        ax.set_ylabel(f"{MODE_NAMES[mode]} speedup vs {REFERENCE}")
        ax.grid(axis="y", alpha=0.3)
        if backends:
            ax.legend(loc="upper right")
    axes[-1, 0].set_xticks(range(len(labels)))
    axes[-1, 0].set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(r: Result) -> str:
    extra = (f" P{r.proj}" if r.proj else "") + (f" L{r.layers}" if r.layers > 1 else "") + \
        (" bi" if r.bidirectional else "")
    return f"{r.cell} {r.T},{r.B},{r.I},{r.H}{extra} {r.dtype}"


def peak_range(results: list[Result]) -> tuple[float, float, float]:
    """(lowest, median, highest) of the peaks timed beside each case and mode, in FLOP/s."""
    timed = {(r.case_key, r.mode): r.peak_gflops_per_s for r in results if math.isfinite(r.peak_gflops_per_s)}
    peaks = sorted(p * 1e9 for p in timed.values())
    return (peaks[0], statistics.median(peaks), peaks[-1]) if peaks else (math.nan,) * 3


def machine_lines(machine: dict, peaks: tuple[float, float, float]) -> list[str]:
    lines = [f"CPU: {machine['cpu']} ({', '.join(machine['cpu_flags']) or 'no SIMD flags read'}), "
             f"{machine['threads']} threads of {machine['usable_cpus']} usable CPUs"]
    if machine["gpu"]:
        lines.append(f"GPU: {machine['gpu']} (CUDA {machine['cuda']}, cuDNN {machine['cudnn']})")
    lines.append(f"torch {machine['torch']}, Python {machine['python']}, {machine['platform']}, "
                 f"fastrnn commit {machine['fastrnn_commit'] or 'unknown'}")
    if machine["load_average_1min"] is not None:
        lines.append(f"load average (1 min) when the run started: {machine['load_average_1min']:.2f}")
    low, median, high = (p / 1e9 for p in peaks)
    lines.append(f"peak: {median:.0f} GFLOP/s median, {low:.0f}-{high:.0f} over the run (float32 torch.mm "
                 f"{PEAK_N}x{PEAK_N} on {machine['device']}, timed in the same interleaved rounds as each row)")
    return lines


def write_readme(path: Path, meta: dict, results: list[Result], checks: list[Check], out: Path) -> None:
    def rel(target: Path) -> str:
        return Path(os.path.relpath(target, path.parent)).as_posix()
    text = [
        "# fastrnn benchmarks",
        "",
        "Written by the benchmark itself (`--write-readme`); rerun the command below instead of editing.",
        "",
        "## Command",
        "",
        f"    {meta['command']}",
        "",
        f"Run {meta['created']} on:",
        "",
        *(f"- {line}" for line in machine_lines(meta["machine"], peak_range(results))),
        "",
        "## Results",
        "",
        f"Medians in ms. `x`: speedup over {REFERENCE} in the same run with the same weights and inputs "
        "(higher is better). `eff`: the shape's matmul FLOPs (input projection, recurrence and projection; "
        "backward counted as twice the forward) per second, as a fraction of the float32 `torch.mm` peak "
        "timed in the same interleaved rounds as the row (`peak_gflops_per_s` in the CSV), whatever the "
        "row's dtype. Above 1, a row ran faster than that matmul: bfloat16 rows can, and float32 rows do where "
        "torch.mm's BLAS leaves part of the CPU's vector width unused (MKL's generic sgemm path on AMD CPUs). "
        "`fwd` runs under `torch.no_grad()`; `fwd+bwd` is a "
        "training step's forward and backward "
        "(input and weight gradients).",
        "",
        render_markdown(*table(results)),
        "",
    ]
    if checks:
        text += ["## Targets (issue 6)", "", render_markdown(*targets_table(checks)), ""]
    failed = errors(results)
    if failed:
        text += ["## Errors", "", *(f"- {e}" for e in failed), ""]
    text += [f"![speedup per shape]({rel(out / 'bench.png')})", "",
             f"All figures: [{rel(out / 'bench.json')}]({rel(out / 'bench.json')}), "
             f"[{rel(out / 'bench.csv')}]({rel(out / 'bench.csv')}).", ""]
    path.write_text("\n".join(text))

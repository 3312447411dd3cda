"""Issue 6's CPU speed targets for the fused ``cpu`` backend (float32), checked on one run's figures.

Informational: a benchmark reports, it does not fail; the check needs the rows it names and
says "n/a" for those a custom sweep left out."""
from __future__ import annotations

import dataclasses
import math

from .cases import STANDARD_SHAPES
from .sweep import Result

BACKEND = "cpu"
MIN_RATIO = 0.95
SMALL_SHAPE, SMALL_CELLS, SMALL_RATIO = (50, 1, 64, 64), ("lstm", "rnn_tanh", "gru"), 3.0
GEOMEAN_RATIO = {"lstm": 1.4, "rnn_tanh": 1.5, "gru": 1.5}
LARGE_SHAPE, MIN_EFFICIENCY = (200, 32, 512, 512), 0.8
MODE_NAMES = {"fwd": "fwd", "fwdbwd": "fwd+bwd"}


@dataclasses.dataclass(frozen=True)
class Check:
    target: str
    measured: str
    status: str  # PASS, FAIL or n/a


def _shape(r: Result) -> tuple[int, int, int, int]:
    return (r.T, r.B, r.I, r.H)


def _where(r: Result) -> str:
    return f"{r.cell} {','.join(map(str, _shape(r)))} {MODE_NAMES[r.mode]}"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def check(results: list[Result]) -> list[Check]:
    rows = [r for r in results if r.impl == BACKEND and r.device == "cpu" and r.dtype == "float32"
            and r.layers == 1 and not r.bidirectional and _shape(r) in STANDARD_SHAPES]
    if not rows:
        return []
    checks = []
    bad = [r for r in rows if not math.isfinite(r.speedup)]
    worst = min((r for r in rows if math.isfinite(r.speedup)), key=lambda r: r.speedup, default=None)
    measured = f"worst {worst.speedup:.2f}x ({_where(worst)}), {len(rows)} rows" if worst else "no timings"
    if bad:
        measured += f"; {len(bad)} failed"
    checks.append(Check(f"every cell/shape/mode >= {MIN_RATIO}x", measured,
                        _verdict(not bad and worst is not None and worst.speedup >= MIN_RATIO)))

    by_key = {(r.cell, _shape(r), r.mode): r for r in rows}
    for cell in SMALL_CELLS:
        r = by_key.get((cell, SMALL_SHAPE, "fwdbwd"))
        target = f"{cell} {','.join(map(str, SMALL_SHAPE))} fwd+bwd >= {SMALL_RATIO}x"
        checks.append(_ratio_check(target, r.speedup if r else None, SMALL_RATIO))
    for cell, goal in GEOMEAN_RATIO.items():
        ratios = [by_key[k].speedup for k in ((cell, s, "fwdbwd") for s in STANDARD_SHAPES) if k in by_key]
        target = f"{cell} fwd+bwd geomean over the standard shapes >= {goal}x"
        geomean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if len(ratios) == len(STANDARD_SHAPES) \
            and all(math.isfinite(x) and x > 0 for x in ratios) else None
        checks.append(_ratio_check(target, geomean, goal))
    for mode in ("fwd", "fwdbwd"):
        large = [r for r in rows if _shape(r) == LARGE_SHAPE and r.mode == mode]
        target = f"efficiency at {','.join(map(str, LARGE_SHAPE))} {MODE_NAMES[mode]} >= {MIN_EFFICIENCY} (every cell)"
        if not large or not all(math.isfinite(r.efficiency) for r in large):
            checks.append(Check(target, "no timings", "n/a"))
            continue
        low = min(large, key=lambda r: r.efficiency)
        checks.append(Check(target, f"worst {low.efficiency:.2f} ({low.cell})", _verdict(low.efficiency >= MIN_EFFICIENCY)))
    return checks


def _ratio_check(target: str, value: float | None, goal: float) -> Check:
    if value is None or not math.isfinite(value):
        return Check(target, "no timings", "n/a")
    return Check(target, f"{value:.2f}x", _verdict(value >= goal))

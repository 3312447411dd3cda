"""The one tolerance rule (DESIGN.md), so no test picks its own.

float32/float64: ``torch.testing.assert_close`` defaults. float16/bfloat16: the result's largest
error against a float64 reference may be at most twice the error of the reference computation
run in the same low precision (torch.nn, or reference.py for single ops), plus a small floor.
Because that error grows with sequence length, the bound scales with the problem.
"""
from __future__ import annotations

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)
FLOOR = {torch.float16: 1e-3, torch.bfloat16: 8e-3}


def max_err(a: torch.Tensor, ref64: torch.Tensor) -> float:
    return (a.double() - ref64.double()).abs().max().item() if a.numel() else 0.0


def assert_close_rule(actual: torch.Tensor, ref64: torch.Tensor, same_dtype: torch.Tensor | None = None,
                      name: str = "") -> None:
    """``actual`` against ``ref64`` (float64); ``same_dtype``: the reference computed in actual's dtype."""
    assert actual.shape == ref64.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(ref64.shape)}"
    if actual.dtype not in LOW_PRECISION:
        torch.testing.assert_close(actual, ref64.to(actual.dtype), msg=lambda m: f"{name}: {m}")
        return
    assert same_dtype is not None, f"{name}: low precision needs the same-dtype reference"
    bound = 2 * max_err(same_dtype, ref64) + FLOOR[actual.dtype]
    err = max_err(actual, ref64)
    assert err <= bound, f"{name}: error {err:.3g} against float64 exceeds 2x same-dtype reference + floor = {bound:.3g}"

"""The CPU backend's other builds on this machine: the AVX2 kernels (an AVX-512 CPU runs the AVX-512
ones), the scalar loops (FASTRNN_CPU_VEC), and each of the two step GEMMs, MKL's packed GEMM and the
panel GEMM (FASTRNN_CPU_GEMM; the CPU picks one by default), through test_ops' forward and backward
tests of the cpu backend in float32 and bfloat16, and test_layer_op's layer nodes (their products on the
panel GEMM where that is AVX-512, the LSTM's input projection in its steps' GEMMs, its products beside a loop
of one thread), test_one_step's steps without gradient, and test_bfloat16_steps (the bfloat16 pairs GEMM
where it runs). "widest-panel" runs the panel GEMM in the widest build this CPU runs (AVX-512 on an AVX-512
CPU). The variables are read once per process: a subprocess each."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from fastrnn import _ext

pytestmark = pytest.mark.skipif(not _ext.has_cpu(), reason="fastrnn._C is not built")


@pytest.mark.parametrize("vec,gemm", [("avx2", "mkl"), ("avx2", "panel"), ("", "panel"), ("0", "")],
                         ids=["avx2-mkl", "avx2-panel", "widest-panel", "scalar"])
def test_ops_on_build(vec, gemm):
    if vec == "avx2" and torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the CPU has no AVX2")
    here = pathlib.Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here / "test_ops.py"),
         str(here / "test_layer_op.py"), str(here / "test_one_step.py"), str(here / "test_bfloat16_steps.py"),
         "-k", "((test_forward or test_backward) and cpu and not float64) or test_fused_input_projection"
         " or test_layer_matches_layer_function or test_products_beside_loop[ or test_one_step or test_bfloat16"],
        env={**os.environ, "FASTRNN_CPU_VEC": vec, "FASTRNN_CPU_GEMM": gemm}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout

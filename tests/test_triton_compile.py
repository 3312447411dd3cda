"""Every Triton kernel compiles to a cubin for sm_80 and sm_90, in every dtype, without a GPU.

The interpreter (what test_triton.py runs without a GPU) lets through code a real compile
rejects; this runs the whole pipeline with the ptxas of the triton wheel and also fails when a
kernel spills registers (see ``fastrnn._triton.aot``). Triton must be imported with
TRITON_INTERPRET unset, so each compile runs in a child process. Compiled kernels land in
Triton's cache: the first run takes a few minutes of CPU, later runs seconds.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")
pytestmark = pytest.mark.triton
ROOT = Path(__file__).resolve().parents[1]
PTXAS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"


def _aot(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "fastrnn._triton.aot", "--quiet", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(not PTXAS.exists(), reason="the triton wheel has no ptxas")
@pytest.mark.parametrize("arch", [80, 90], ids=lambda a: f"sm_{a}")
def test_every_kernel_compiles_without_spills(arch):
    result = _aot("--arch", str(arch))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "76 kernels compiled, 0 spill" in result.stdout, result.stdout


def test_launch_table_covers_every_kernel():
    """aot.launches lists every @triton.jit kernel of step.py and sequence.py (helpers aside)."""
    from fastrnn._triton import aot, sequence, step
    import torch
    listed = {launch.kernel for launch in aot.launches(torch.float32)}
    helpers = {"prev_tile", "step_rows", "recurrent", "w_tile", "w_tile_t", "step_at"}
    for mod, prefix in ((step, "step"), (sequence, "sequence")):
        kernels = {name for name, obj in vars(mod).items()
                   if type(obj).__name__ in ("JITFunction", "InterpretedFunction") and name not in helpers}
        assert len(kernels) >= 6
        assert {f"{prefix}.{k}" for k in kernels} <= listed


def test_a_broken_kernel_fails_to_compile(tmp_path):
    """The compile check catches what the interpreter accepts: a 16-bit tl.dot with K < 16."""
    src = tmp_path / "bad_kernel.py"
    src.write_text(
        "import triton, triton.language as tl\n"
        "from triton.backends.compiler import GPUTarget\n"
        "from triton.compiler import ASTSource\n"
        "@triton.jit\n"
        "def k(a, c):\n"
        "    r = tl.arange(0, 16)\n"
        "    x = tl.load(a + r[:, None] * 8 + tl.arange(0, 8)[None, :])\n"
        "    y = tl.load(a + tl.arange(0, 8)[:, None] * 16 + r[None, :])\n"
        "    tl.store(c + r[:, None] * 16 + r[None, :], tl.dot(x, y))\n"
        "triton.compile(ASTSource(k, {'a': '*fp16', 'c': '*fp32'}), target=GPUTarget('cuda', 80, 32))\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, str(src)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "K >= 16" in result.stderr

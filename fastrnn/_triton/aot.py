"""Compile every Triton kernel for a real GPU target without a GPU (a check, and a CI step).

The interpreter accepts code a GPU compile rejects (dot shapes, dtype mixes, register blow-ups),
so ``compile_all`` runs the full pipeline down to a cubin with the ptxas shipped in the triton
wheel. It needs ``TRITON_INTERPRET`` unset when triton is imported (``triton.jit`` returns
interpreter functions otherwise), which is why ``python -m fastrnn._triton.aot`` runs it in its own process.

    python -m fastrnn._triton.aot --arch 80 90 --dtype float32 bfloat16
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

_TL = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
#: Pointer arguments in the accumulation type (float32, or float64 for float64); bs/off are int64.
_ACC_PTRS = {"dg_ptr", "dstate_ptr", "dc_ptr", "dhraw_ptr", "dhp_ptr"}


@dataclasses.dataclass(frozen=True)
class Launch:
    """One kernel specialization as a launcher uses it: constexprs and pointer types that differ from the default."""
    kernel: str  # "module.name"
    constexprs: dict
    acc_ptrs: frozenset = frozenset()  # extra pointers in the accumulation type

    @property
    def label(self) -> str:
        flags = ",".join(f"{k}={v}" for k, v in self.constexprs.items())
        return f"{self.kernel}[{flags}]"


def largest_sequence_hidden(gates: int, dtype: torch.dtype, proj: bool = False) -> int:
    """The largest power-of-two hidden size for which ``choose_kernel`` picks the sequence kernel."""
    from .schedule import choose_kernel
    h = 16
    while choose_kernel(gates, 2 * h, 16 if proj else 2 * h, dtype) == "sequence":
        h *= 2
    return h


def launches(dtype: torch.dtype, hidden: int = 48, proj: int = 16) -> list[Launch]:
    """Every kernel in each specialization the launchers in ops.py use: step kernels at ``hidden``
    (several tiles), sequence kernels at the largest size ``choose_kernel`` gives them for ``dtype``."""
    from .schedule import seq_tiles, tiles
    st, pst = tiles(hidden, hidden), tiles(hidden, proj)
    mm = {"BB": 16, "BN": st["BH"], "BK": st["BK"]}

    def sq(gates, with_proj=False):
        h = largest_sequence_hidden(gates, dtype, with_proj)
        return seq_tiles(h, 16 if with_proj else h)

    return [
        Launch("step.rnn_step_forward", {"ACT": 0, **st}),
        Launch("step.rnn_step_forward", {"ACT": 1, **st}),
        Launch("step.lstm_step_forward", {"PROJ": False, **st}),
        Launch("step.lstm_step_forward", {"PROJ": True, **pst}),
        Launch("step.gru_step_forward", {"HAS_BHN": True, **st}),
        Launch("step.rnn_step_backward", {"ACT": 0, "BB": 16, "BH": st["BH"]}),
        Launch("step.lstm_step_backward", {"PROJ": True, "BB": 16, "BH": st["BH"]}),
        Launch("step.gru_step_backward", {"BB": 16, "BH": st["BH"]}),
        # rows_matmul: forward projection, backward dH update, backward projection
        Launch("step.rows_matmul", {"A_AT_OFF": False, "ADD_A2": False, "SAVE_A": False, "C_AT_OFF": True,
                                    "ACCUMULATE": False, "HAS_C2": True, **mm}),
        Launch("step.rows_matmul", {"A_AT_OFF": True, "ADD_A2": False, "SAVE_A": False, "C_AT_OFF": False,
                                    "ACCUMULATE": True, "HAS_C2": False, **mm},
               frozenset({"a_ptr", "a2_ptr", "asave_ptr", "c_ptr", "c2_ptr"})),
        Launch("step.rows_matmul", {"A_AT_OFF": True, "ADD_A2": True, "SAVE_A": True, "C_AT_OFF": False,
                                    "ACCUMULATE": False, "HAS_C2": False, **mm},
               frozenset({"a2_ptr", "asave_ptr", "c_ptr", "c2_ptr"})),
        Launch("sequence.rnn_seq_forward", {"ACT": 0, "REVERSE": False, **sq(1)}),
        Launch("sequence.lstm_seq_forward", {"PROJ": True, "REVERSE": True, **sq(4, True)}),
        Launch("sequence.lstm_seq_forward", {"PROJ": False, "REVERSE": False, **sq(4)}),
        Launch("sequence.gru_seq_forward", {"HAS_BHN": True, "REVERSE": False, **sq(3)}),
        Launch("sequence.rnn_seq_backward", {"ACT": 1, "REVERSE": True, **sq(1)}),
        Launch("sequence.lstm_seq_backward", {"PROJ": True, "REVERSE": False, **sq(4, True)}),
        Launch("sequence.lstm_seq_backward", {"PROJ": False, "REVERSE": True, **sq(4)}),
        Launch("sequence.gru_seq_backward", {"REVERSE": False, **sq(3)}),
    ]


def _kernel(name: str):
    import importlib
    mod, fn = name.split(".")
    return getattr(importlib.import_module(f"fastrnn._triton.{mod}"), fn)


def compile_launch(launch: Launch, dtype: torch.dtype, arch: int):
    """triton.compile one specialization for sm_<arch>; returns the CompiledKernel (raises on failure)."""
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _kernel(launch.kernel)
    if not hasattr(fn, "arg_names"):
        raise RuntimeError("fastrnn: kernels were built by the interpreter; unset TRITON_INTERPRET")
    acc = "fp64" if dtype == torch.float64 else "fp32"
    constexprs = dict(launch.constexprs, UPCAST=False, ACC=tl.float64 if dtype == torch.float64 else tl.float32)
    constexprs = {k: v for k, v in constexprs.items() if k in fn.arg_names}
    signature = {}
    for name in fn.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in ("bs_ptr", "off_ptr"):
            signature[name] = "*i64"
        elif name.endswith("_ptr"):
            signature[name] = "*" + (acc if name in _ACC_PTRS | launch.acc_ptrs else _TL[dtype])
        else:
            signature[name] = "i32"
    missing = set(fn.arg_names) - set(signature)
    assert not missing, missing
    return triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", arch, 32))


def resource_usage(kernel) -> dict[str, int]:
    """Registers, stack (spills), shared and local memory per thread, from the cubin (cuobjdump of the triton wheel)."""
    import os
    import re
    import subprocess
    import tempfile

    import triton
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        text = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", text)
    if not m:
        raise RuntimeError(f"fastrnn: unexpected cuobjdump output: {text[-300:]}")
    return dict(zip(("regs", "stack", "shared", "local"), map(int, m.groups())))


#: A stack frame above this many bytes per thread means real register spills (a small frame is normal).
MAX_STACK = 128


def compile_all(archs=(80, 90), dtypes=tuple(DTYPES.values()), verbose: bool = False) -> list[str]:
    """Compile every launch for every arch and dtype; returns the failures (spills past MAX_STACK)."""
    failures = []
    for arch in archs:
        for dtype in dtypes:
            for launch in launches(dtype):
                t0 = time.perf_counter()
                usage = resource_usage(compile_launch(launch, dtype, arch))
                line = (f"sm_{arch} {str(dtype)[6:]:8} {launch.label} {time.perf_counter() - t0:.1f}s "
                        + " ".join(f"{k}={v}" for k, v in usage.items()))
                if usage["stack"] > MAX_STACK:
                    failures.append(line)
                if verbose:
                    print(line, flush=True)
    return failures


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    failures = compile_all(args.arch, [DTYPES[d] for d in args.dtype], verbose=not args.quiet)
    n = len(args.arch) * len(args.dtype) * len(launches(torch.float32))
    print(f"{n} kernels compiled, {len(failures)} spill more than {MAX_STACK} bytes of stack")
    for line in failures:
        print("SPILLS:", line)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()

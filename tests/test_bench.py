"""The benchmark CLI: its FLOP count, its target check, and a --quick run end to end (seconds)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import fastrnn
from fastrnn import bench
from fastrnn._bench.cases import Case, build_fastrnn, build_reference, flops, forward_flops, make_inputs
from fastrnn._bench.sweep import Result
from fastrnn._bench.targets import check

ROOT = Path(__file__).resolve().parents[1]


def test_flops_hand_counted():
    # LSTM T=2 B=3 I=4 H=5: 2*T*B*4H*(I+H) = 2*2*3*20*9
    assert forward_flops(Case("lstm", 2, 3, 4, 5)) == 2160
    assert flops(Case("lstm", 2, 3, 4, 5), "fwdbwd") == 3 * 2160
    # with proj P=2: 2*2*3*20*(4+2) for x@W_ih^T and h@W_hh^T, + 2*2*3*2*5 for the projection
    assert forward_flops(Case("lstm", 2, 3, 4, 5, proj=2)) == 1440 + 120
    # GRU T=2 B=1 I=3 H=2, 2 layers, bidirectional: per direction 2*2*1*6*(3+2) = 120, then the
    # second layer reads both directions (4 features): 2*2*1*6*(4+2) = 144
    assert forward_flops(Case("gru", 2, 1, 3, 2, layers=2, bidirectional=True)) == 2 * 120 + 2 * 144
    assert forward_flops(Case("rnn_tanh", 10, 4, 8, 8)) == 2 * 10 * 4 * 8 * 16


@pytest.mark.parametrize("case", [Case("rnn_tanh", 4, 2, 5, 6), Case("lstm", 4, 2, 5, 6, proj=3, layers=2, bidirectional=True),
                                  Case("gru", 4, 2, 5, 6, layers=2)], ids=lambda c: c.label.replace(" ", "-"))
def test_flops_match_counted_matmuls(case):
    """The formula against torch's FLOP counter on fastrnn's plain-PyTorch backend (every product explicit).
    Backward is 2x forward less one step's dh_{-1} product, which autograd skips (h0 needs no gradient)."""
    torch.manual_seed(0)
    module = build_fastrnn(case, "cpu", "torch", build_reference(case, "cpu"))
    x, grad_out = make_inputs(case, "cpu")
    x.requires_grad_()
    with FlopCounterMode(display=False) as counter:
        out = module(x)[0]
    assert counter.get_total_flops() == forward_flops(case)
    with FlopCounterMode(display=False) as counter:
        out.backward(grad_out)
    backward = counter.get_total_flops()
    assert 2 * forward_flops(case) * (1 - 1 / case.T) <= backward <= 2 * forward_flops(case)


def _rows(speedup=2.0, efficiency=0.9, small=3.5):
    rows = []
    for shape in ((100, 16, 128, 128), (100, 64, 256, 256), (50, 1, 64, 64), (200, 32, 512, 512)):
        for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
            for mode in ("fwd", "fwdbwd"):
                ratio = small if shape == (50, 1, 64, 64) else speedup
                rows.append(Result(cell, *shape, 0, 1, False, "float32", "cpu", mode, "cpu",
                                   speedup=ratio, efficiency=efficiency))
    return rows


def test_targets_pass_and_fail():
    assert {c.status for c in check(_rows())} == {"PASS"}
    slow = _rows(speedup=1.2, efficiency=0.5, small=2.0)
    verdicts = {c.target: c.status for c in check(slow)}
    assert verdicts["every cell/shape/mode >= 0.95x"] == "PASS"
    assert verdicts["lstm 50,1,64,64 fwd+bwd >= 3.0x"] == "FAIL"
    assert all(v == "FAIL" for t, v in verdicts.items() if "geomean" in t or "efficiency" in t)
    slow[0].speedup = 0.9
    assert check(slow)[0].status == "FAIL"
    # a custom sweep without the standard shapes has nothing to check
    assert check([Result("lstm", 3, 2, 4, 4, 0, 1, False, "float32", "cpu", "fwd", "cpu", speedup=1.0)]) == []


@pytest.mark.parametrize("argv, message", [
    (["--backends", "cuda_emulated"], "test facility"),
    (["--backends", "nope"], "unknown backend"),
    (["--cell", "gru", "--proj"], "--proj"),
    (["--cell", "lstm", "--H", "8", "--proj", "8"], "proj"),
    (["--dtype", "int8"], "dtype"),
    (["--threads", "0"], "--threads"),
    (["--device", "gpu0"], "--device"),
    (["--T", "ten"], "--T"),
])
def test_bad_arguments_name_the_argument(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_quick_run_writes_every_output(tmp_path):
    # Triton on a CPU (the conftest sets TRITON_INTERPRET=1) is its interpreter: not benchmarked.
    fused = ("cpu", "cuda", "triton") if torch.cuda.is_available() else ("cpu",)
    backends = ["torch"] + [b for b in fastrnn.available_backends() if b in fused]
    readme = tmp_path / "README.md"
    cmd = [sys.executable, "-m", "fastrnn.bench", "--quick", "--threads", "1", "--min-run-time", "0.01",
           "--backends", ",".join(backends), "--out", str(tmp_path), "--write-readme", str(readme), "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("bench.json", "bench.csv", "bench.png"):
        assert (tmp_path / name).stat().st_size > 0
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["machine"]["torch"] == torch.__version__ and doc["machine"]["threads"] == 1
    timed = [r for r in doc["results"] if r["impl"] != "torch.nn"]
    assert {r["impl"] for r in timed} == set(backends)
    assert all(r["error"] == "" and math.isfinite(r["speedup"]) and r["speedup"] > 0 for r in timed)
    assert all(r["efficiency"] > 0 for r in doc["results"])
    csv_lines = (tmp_path / "bench.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(doc["results"])
    text = readme.read_text()
    assert doc["command"] in text and "| torch.nn ms |" in text

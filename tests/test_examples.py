"""The examples run as a user runs them (a subprocess, public API only), in their quick mode."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_sine_wave(tmp_path):
    png = tmp_path / "plot.png"
    out = _run("sine_wave.py", "--out", str(png), cwd=tmp_path)
    assert "epoch   2/2" in out and "test mse" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_char_lm(cell, tmp_path):
    out = _run("char_lm.py", "--cell", cell, "--layers", "2", "--prefix", "The ", cwd=tmp_path)
    lines = out.splitlines()
    assert any(line.startswith("corpus: ") for line in lines)
    epoch = next(line for line in lines if line.startswith("epoch 1/1"))
    assert "train ppl" in epoch and "valid ppl" in epoch and "torch.nn" in epoch
    sample = next(i for i, line in enumerate(lines) if line.startswith("sample from 'The '"))
    assert "\n".join(lines[sample + 1:]).startswith("The ")

"""Next-value regression on a sine wave with fastrnn.RNN: from 5 consecutive samples, predict the 6th.

    python examples/sine_wave.py                  # about 20 s on 2 CPU cores; writes sine_wave.png
    python examples/sine_wave.py --quick          # a smoke run (2 epochs)

The PNG shows the training/test loss per epoch and the one-step-ahead prediction on the test range.
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import fastrnn


class NextValue(nn.Module):
    """RNN over the window, linear read-out of the last hidden state."""

    def __init__(self, hidden: int, backend: str):
        super().__init__()
        self.rnn = fastrnn.RNN(1, hidden, batch_first=True, backend=backend)
        self.out = nn.Linear(hidden, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # [B, window, 1] -> [B]
        output, _ = self.rnn(windows)
        return self.out(output[:, -1]).squeeze(-1)


def make_windows(signal: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(windows [N, window, 1], next values [N]) from a 1-D signal."""
    windows = signal.unfold(0, window, 1)[:-1]
    return windows.unsqueeze(-1), signal[window:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--hidden", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--points", type=int, default=1000, help="samples of the sine wave (over 10 periods)")
    p.add_argument("--backend", default="auto", help="fastrnn backend: auto, cpu, torch, ...")
    p.add_argument("--out", default="sine_wave.png", help="where to write the PNG")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="2 epochs on 200 points: a smoke test")
    args = p.parse_args()
    if args.quick:
        args.epochs, args.points = 2, 200

    torch.manual_seed(args.seed)
    t = torch.linspace(0, 20 * math.pi, args.points)
    x, y = make_windows(torch.sin(t), args.window)
    split = int(0.8 * len(x))
    train_x, train_y, test_x, test_y = x[:split], y[:split], x[split:], y[split:]

    model = NextValue(args.hidden, args.backend)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    history = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for idx in torch.randperm(len(train_x)).split(args.batch_size):
            opt.zero_grad()
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            test_loss = loss_fn(model(test_x), test_y).item()
        history.append((total / len(train_x), test_loss))
        print(f"epoch {epoch:3d}/{args.epochs}  train mse {history[-1][0]:.5f}  test mse {test_loss:.5f}  "
              f"({time.perf_counter() - start:.2f} s)", flush=True)

    with torch.no_grad():
        prediction = model(test_x)
    plot(history, t[args.window:][split:], test_y, prediction, args.out)
    print(f"wrote {args.out}")


def plot(history, t, truth, prediction, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_pred) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = range(1, len(history) + 1)
    ax_loss.semilogy(epochs, [h[0] for h in history], label="train")
    ax_loss.semilogy(epochs, [h[1] for h in history], label="test")
    ax_loss.set(xlabel="epoch", ylabel="MSE", title="loss")
    ax_loss.legend()
    ax_pred.plot(t, truth, label="sin(t)")
    ax_pred.plot(t, prediction, "--", label="fastrnn.RNN prediction")
    ax_pred.set(xlabel="t", title="next value on the test range")
    ax_pred.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()

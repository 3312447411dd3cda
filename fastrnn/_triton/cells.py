"""The cell math of ``csrc/cells.h`` as Triton device functions, on tiles of the accumulation type.

Same gate order, bias placement and backward formulas as the C++ header, so every backend
agrees bit for bit in structure. ``tanh`` is ``2 * sigmoid(2x) - 1`` because Triton's interpreter
has no libdevice ``tanh``; ``dot`` upcasts its operands when ``UPCAST`` is set because the
interpreter's ``tl.dot`` is wrong on bfloat16 (and rounds float16 sums).
"""
import triton
import triton.language as tl

TANH = 0
RELU = 1
ACT_NAMES = {TANH: "tanh", RELU: "relu"}


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    return 2.0 * sigmoid(2.0 * x) - 1.0


@triton.jit
def dot(a, b, acc, ACC: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b with float accumulation (IEEE float32, never TF32)."""
    if UPCAST:
        a = a.to(ACC)
        b = b.to(ACC)
    return tl.dot(a, b, acc, input_precision="ieee", out_dtype=ACC)


@triton.jit
def act_forward(pre, ACT: tl.constexpr):
    if ACT == 0:
        return tanh(pre)
    else:
        return tl.where(pre <= 0.0, 0.0, pre)  # NaN stays NaN, as in torch.relu (tl.maximum may return 0)


@triton.jit
def act_backward(h, dh, ACT: tl.constexpr):
    if ACT == 0:
        return dh * (1.0 - h * h)
    else:
        return tl.where(h > 0.0, dh, 0.0)


@triton.jit
def lstm_forward(pi, pf, pg, po, c_prev):
    """Pre-activations and c_{t-1} -> i, f, g, o, c_t and the unprojected h_t."""
    i = sigmoid(pi)
    f = sigmoid(pf)
    g = tanh(pg)
    o = sigmoid(po)
    c = f * c_prev + i * g
    return i, f, g, o, c, o * tanh(c)


@triton.jit
def lstm_backward(i, f, g, o, c_prev, c, dh, dc):
    """-> gradients of the four pre-activations and of c_{t-1}."""
    tc = tanh(c)
    dout = dh * tc * o * (1.0 - o)
    dct = dc + dh * o * (1.0 - tc * tc)
    di = dct * g * i * (1.0 - i)
    df = dct * c_prev * f * (1.0 - f)
    dg = dct * i * (1.0 - g * g)
    return di, df, dg, dout, dct * f


@triton.jit
def gru_forward(xr, xz, xn, hr, hz, hn, h_prev):
    """hn includes b_hn. -> r, z, n, h_t."""
    r = sigmoid(xr + hr)
    z = sigmoid(xz + hz)
    n = tanh(xn + r * hn)
    return r, z, n, (1.0 - z) * n + z * h_prev


@triton.jit
def gru_backward(r, z, n, hn, h_prev, dh):
    """-> dxr, dxz, dxn, dhn (the n part of the recurrent GEMM's gradient) and the direct part of dh_{t-1}."""
    dn = dh * (1.0 - z)
    dxn = dn * (1.0 - n * n)
    dhn = dxn * r
    dxr = dxn * hn * r * (1.0 - r)
    dxz = dh * (h_prev - n) * z * (1.0 - z)
    return dxr, dxz, dxn, dhn, dh * z

"""Step-fused kernels: one launch per time step.

Every step kernel runs on a grid of (batch tile, hidden tile) programs. Rows of the step are the
flattened rows ``[off, off + n)`` of ``xw`` and its outputs, with ``n = batch_sizes[t]`` and
``off = offsets[t]`` read on the device (so the launchers never look at data on the host and
``torch.compile`` can trace them), and every load and store is masked by ``row < n``.

The forward kernels compute all gates of their tile (``xw[t] + h_{t-1} @ W_hh^T`` with ``tl.dot``)
and the cell math in one launch. ``h_{t-1}`` (and ``c_{t-1}``) of a row comes from the previous
step's output when that step had the row, else from ``h0``: no state buffer is written while it
is read. The backward kernels turn ``dh = grad_output[t] + dH`` (``dH`` the running gradient of the
state, in the accumulation type) into gate gradients; ``rows_matmul`` then forms ``dH = dgates @ W_hh``
(+ the direct part) for the next step, and the LSTM projection in both directions.
"""
import triton
import triton.language as tl

from . import cells


@triton.jit
def prev_tile(out_ptr, init_ptr, r, k, n, n_prev, off_prev, width):
    """State of step t-1 at rows r, columns k: the previous step's output rows, or the initial state."""
    m = (r < n)[:, None] & (k < width)[None, :]
    from_out = (r < n_prev)[:, None]
    a = tl.load(out_ptr + (off_prev + r)[:, None] * width + k[None, :], mask=m & from_out, other=0.0)
    b = tl.load(init_ptr + r[:, None] * width + k[None, :], mask=m & (~from_out), other=0.0)
    return a + b


@triton.jit
def step_rows(bs_ptr, off_ptr, t, tp, has_prev):
    """Rows and offset of step t and of the step processed before it (none when has_prev is 0)."""
    n = tl.load(bs_ptr + t)
    off = tl.load(off_ptr + t)
    n_prev = tl.load(bs_ptr + tp) * has_prev
    off_prev = tl.load(off_ptr + tp)
    return n, off, n_prev, off_prev


@triton.jit
def recurrent(out_ptr, h0_ptr, w_ptr, row0, r, j, n, n_prev, off_prev, H, P, acc,
              ACC: tl.constexpr, UPCAST: tl.constexpr, BK: tl.constexpr):
    """acc + h_{t-1}[r, :] @ W_hh[row0 + j, :]^T, over K = P in BK blocks."""
    for k0 in range(0, P, BK):
        k = k0 + tl.arange(0, BK)
        h = prev_tile(out_ptr, h0_ptr, r, k, n, n_prev, off_prev, P)
        w = tl.load(w_ptr + (row0 + j)[None, :] * P + k[:, None], mask=(j < H)[None, :] & (k < P)[:, None],
                    other=0.0)
        acc = cells.dot(h, w, acc, ACC, UPCAST)
    return acc


@triton.jit(do_not_specialize=["t", "tp", "has_prev"])
def rnn_step_forward(xw_ptr, w_ptr, h0_ptr, out_ptr, hn_ptr, bs_ptr, off_ptr, t, tp, has_prev, H,
                     ACT: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                     BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr):
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.program_id(1) * BH + tl.arange(0, BH)
    n, off, n_prev, off_prev = step_rows(bs_ptr, off_ptr, t, tp, has_prev)
    m = (r < n)[:, None] & (j < H)[None, :]
    rows = (off + r)[:, None] * H + j[None, :]
    pre = tl.load(xw_ptr + rows, mask=m, other=0.0).to(ACC)
    pre = recurrent(out_ptr, h0_ptr, w_ptr, 0, r, j, n, n_prev, off_prev, H, H, pre, ACC, UPCAST, BK)
    h = cells.act_forward(pre, ACT).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + rows, h, mask=m)
    tl.store(hn_ptr + r[:, None] * H + j[None, :], h, mask=m)


@triton.jit(do_not_specialize=["t", "tp", "has_prev"])
def lstm_step_forward(xw_ptr, w_ptr, h0_ptr, c0_ptr, out_ptr, hraw_ptr, hn_ptr, cn_ptr, gates_ptr, cells_ptr,
                      bs_ptr, off_ptr, t, tp, has_prev, H, P,
                      PROJ: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                      BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr):
    """Gates, c_t and h_t; with PROJ the unprojected h_t goes to hraw [B, H] for rows_matmul."""
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.program_id(1) * BH + tl.arange(0, BH)
    n, off, n_prev, off_prev = step_rows(bs_ptr, off_ptr, t, tp, has_prev)
    m = (r < n)[:, None] & (j < H)[None, :]
    g_rows = (off + r)[:, None] * (4 * H) + j[None, :]
    x = xw_ptr + g_rows
    pi = recurrent(out_ptr, h0_ptr, w_ptr, 0, r, j, n, n_prev, off_prev, H, P,
                   tl.load(x, mask=m, other=0.0).to(ACC), ACC, UPCAST, BK)
    pf = recurrent(out_ptr, h0_ptr, w_ptr, H, r, j, n, n_prev, off_prev, H, P,
                   tl.load(x + H, mask=m, other=0.0).to(ACC), ACC, UPCAST, BK)
    pg = recurrent(out_ptr, h0_ptr, w_ptr, 2 * H, r, j, n, n_prev, off_prev, H, P,
                   tl.load(x + 2 * H, mask=m, other=0.0).to(ACC), ACC, UPCAST, BK)
    po = recurrent(out_ptr, h0_ptr, w_ptr, 3 * H, r, j, n, n_prev, off_prev, H, P,
                   tl.load(x + 3 * H, mask=m, other=0.0).to(ACC), ACC, UPCAST, BK)
    c_prev = prev_tile(cells_ptr, c0_ptr, r, j, n, n_prev, off_prev, H).to(ACC)
    i, f, g, o, c, h = cells.lstm_forward(pi, pf, pg, po, c_prev)
    dt = out_ptr.dtype.element_ty
    gp = gates_ptr + g_rows
    tl.store(gp, i.to(dt), mask=m)
    tl.store(gp + H, f.to(dt), mask=m)
    tl.store(gp + 2 * H, g.to(dt), mask=m)
    tl.store(gp + 3 * H, o.to(dt), mask=m)
    tl.store(cells_ptr + (off + r)[:, None] * H + j[None, :], c.to(dt), mask=m)
    tl.store(cn_ptr + r[:, None] * H + j[None, :], c.to(dt), mask=m)
    if PROJ:
        tl.store(hraw_ptr + r[:, None] * H + j[None, :], h.to(dt), mask=m)
    else:
        tl.store(out_ptr + (off + r)[:, None] * H + j[None, :], h.to(dt), mask=m)
        tl.store(hn_ptr + r[:, None] * H + j[None, :], h.to(dt), mask=m)


@triton.jit(do_not_specialize=["t", "tp", "has_prev"])
def gru_step_forward(xw_ptr, w_ptr, bhn_ptr, h0_ptr, out_ptr, hn_ptr, ws_ptr, bs_ptr, off_ptr, t, tp, has_prev, H,
                     HAS_BHN: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                     BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr):
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.program_id(1) * BH + tl.arange(0, BH)
    n, off, n_prev, off_prev = step_rows(bs_ptr, off_ptr, t, tp, has_prev)
    m = (r < n)[:, None] & (j < H)[None, :]
    x = xw_ptr + (off + r)[:, None] * (3 * H) + j[None, :]
    zero = tl.zeros((BB, BH), ACC)
    hr = recurrent(out_ptr, h0_ptr, w_ptr, 0, r, j, n, n_prev, off_prev, H, H, zero, ACC, UPCAST, BK)
    hz = recurrent(out_ptr, h0_ptr, w_ptr, H, r, j, n, n_prev, off_prev, H, H, zero, ACC, UPCAST, BK)
    hn = recurrent(out_ptr, h0_ptr, w_ptr, 2 * H, r, j, n, n_prev, off_prev, H, H, zero, ACC, UPCAST, BK)
    if HAS_BHN:
        hn += tl.load(bhn_ptr + j, mask=j < H, other=0.0).to(ACC)[None, :]
    h_prev = prev_tile(out_ptr, h0_ptr, r, j, n, n_prev, off_prev, H).to(ACC)
    rg, z, ng, h = cells.gru_forward(tl.load(x, mask=m, other=0.0).to(ACC), tl.load(x + H, mask=m, other=0.0).to(ACC),
                                     tl.load(x + 2 * H, mask=m, other=0.0).to(ACC), hr, hz, hn, h_prev)
    dt = out_ptr.dtype.element_ty
    w = ws_ptr + (off + r)[:, None] * (4 * H) + j[None, :]
    tl.store(w, rg.to(dt), mask=m)
    tl.store(w + H, z.to(dt), mask=m)
    tl.store(w + 2 * H, ng.to(dt), mask=m)
    tl.store(w + 3 * H, hn.to(dt), mask=m)
    tl.store(out_ptr + (off + r)[:, None] * H + j[None, :], h.to(dt), mask=m)
    tl.store(hn_ptr + r[:, None] * H + j[None, :], h.to(dt), mask=m)


@triton.jit(do_not_specialize=["t"])
def rows_matmul(a_ptr, a2_ptr, asave_ptr, b_ptr, c_ptr, c2_ptr, bs_ptr, off_ptr, t, K, N, stride_bk, stride_bn,
                A_AT_OFF: tl.constexpr, ADD_A2: tl.constexpr, SAVE_A: tl.constexpr, C_AT_OFF: tl.constexpr,
                ACCUMULATE: tl.constexpr, HAS_C2: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                BB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """C[rows of step t] (+)= (A + A2)[rows] @ B, B [K, N] by strides; A, C, asave [.., K|N] contiguous.

    Rows are r < batch_sizes[t], addressed at offsets[t] + r (the flattened sequence) where *_AT_OFF,
    else at r (a [B, ..] state). A2 (rows r) is added to A; SAVE_A stores that sum to asave (at the
    offset); C2 (rows r) receives a copy of C. Operands are rounded to B's dtype, as torch.mm would.
    """
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    c_cols = tl.program_id(1) * BN + tl.arange(0, BN)
    n = tl.load(bs_ptr + t)
    off = tl.load(off_ptr + t)
    rm = r < n
    a_rows = off + r if A_AT_OFF else r
    acc = tl.zeros((BB, BN), ACC)
    for k0 in range(0, K, BK):
        k = k0 + tl.arange(0, BK)
        am = rm[:, None] & (k < K)[None, :]
        a = tl.load(a_ptr + a_rows[:, None] * K + k[None, :], mask=am, other=0.0)
        if ADD_A2:
            a = a.to(ACC) + tl.load(a2_ptr + r[:, None] * K + k[None, :], mask=am, other=0.0).to(ACC)
        if SAVE_A:
            tl.store(asave_ptr + (off + r)[:, None] * K + k[None, :], a.to(asave_ptr.dtype.element_ty),
                     mask=am & (tl.program_id(1) == 0))
        b = tl.load(b_ptr + k[:, None] * stride_bk + c_cols[None, :] * stride_bn,
                    mask=(k < K)[:, None] & (c_cols < N)[None, :], other=0.0)
        acc = cells.dot(a.to(b.dtype), b, acc, ACC, UPCAST)
    cm = rm[:, None] & (c_cols < N)[None, :]
    c_rows = off + r if C_AT_OFF else r
    cp = c_ptr + c_rows[:, None] * N + c_cols[None, :]
    if ACCUMULATE:
        acc += tl.load(cp, mask=cm, other=0.0).to(ACC)
    tl.store(cp, acc.to(c_ptr.dtype.element_ty), mask=cm)
    if HAS_C2:
        tl.store(c2_ptr + r[:, None] * N + c_cols[None, :], acc.to(c2_ptr.dtype.element_ty), mask=cm)


@triton.jit(do_not_specialize=["t"])
def rnn_step_backward(gout_ptr, out_ptr, dstate_ptr, dg_ptr, gxw_ptr, bs_ptr, off_ptr, t, H,
                      ACT: tl.constexpr, ACC: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr):
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.program_id(1) * BH + tl.arange(0, BH)
    n = tl.load(bs_ptr + t)
    off = tl.load(off_ptr + t)
    m = (r < n)[:, None] & (j < H)[None, :]
    rows = (off + r)[:, None] * H + j[None, :]
    dh = tl.load(gout_ptr + rows, mask=m, other=0.0).to(ACC) + tl.load(
        dstate_ptr + r[:, None] * H + j[None, :], mask=m, other=0.0)
    d = cells.act_backward(tl.load(out_ptr + rows, mask=m, other=0.0).to(ACC), dh, ACT)
    tl.store(dg_ptr + rows, d, mask=m)
    tl.store(gxw_ptr + rows, d.to(gxw_ptr.dtype.element_ty), mask=m)


@triton.jit(do_not_specialize=["t", "tp", "has_prev"])
def lstm_step_backward(gout_ptr, dhraw_ptr, dstate_ptr, dc_ptr, gates_ptr, cells_ptr, c0_ptr, dg_ptr, gxw_ptr,
                       bs_ptr, off_ptr, t, tp, has_prev, H,
                       PROJ: tl.constexpr, ACC: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr):
    """dh is grad_output[t] + dH, or with PROJ the unprojected dhraw [B, H]; dc [B, H] is updated in place."""
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.program_id(1) * BH + tl.arange(0, BH)
    n, off, n_prev, off_prev = step_rows(bs_ptr, off_ptr, t, tp, has_prev)
    m = (r < n)[:, None] & (j < H)[None, :]
    state = r[:, None] * H + j[None, :]
    if PROJ:
        dh = tl.load(dhraw_ptr + state, mask=m, other=0.0).to(ACC)
    else:
        dh = tl.load(gout_ptr + (off + r)[:, None] * H + j[None, :], mask=m, other=0.0).to(ACC) + tl.load(
            dstate_ptr + state, mask=m, other=0.0)
    g_rows = (off + r)[:, None] * (4 * H) + j[None, :]
    gp = gates_ptr + g_rows
    i = tl.load(gp, mask=m, other=0.0).to(ACC)
    f = tl.load(gp + H, mask=m, other=0.0).to(ACC)
    g = tl.load(gp + 2 * H, mask=m, other=0.0).to(ACC)
    o = tl.load(gp + 3 * H, mask=m, other=0.0).to(ACC)
    c = tl.load(cells_ptr + (off + r)[:, None] * H + j[None, :], mask=m, other=0.0).to(ACC)
    c_prev = prev_tile(cells_ptr, c0_ptr, r, j, n, n_prev, off_prev, H).to(ACC)
    dc = tl.load(dc_ptr + state, mask=m, other=0.0)
    di, df, dg, do, dc_prev = cells.lstm_backward(i, f, g, o, c_prev, c, dh, dc)
    tl.store(dc_ptr + state, dc_prev, mask=m)
    dt = gxw_ptr.dtype.element_ty
    tl.store(dg_ptr + g_rows, di, mask=m)
    tl.store(dg_ptr + g_rows + H, df, mask=m)
    tl.store(dg_ptr + g_rows + 2 * H, dg, mask=m)
    tl.store(dg_ptr + g_rows + 3 * H, do, mask=m)
    tl.store(gxw_ptr + g_rows, di.to(dt), mask=m)
    tl.store(gxw_ptr + g_rows + H, df.to(dt), mask=m)
    tl.store(gxw_ptr + g_rows + 2 * H, dg.to(dt), mask=m)
    tl.store(gxw_ptr + g_rows + 3 * H, do.to(dt), mask=m)


@triton.jit(do_not_specialize=["t", "tp", "has_prev"])
def gru_step_backward(gout_ptr, out_ptr, h0_ptr, ws_ptr, dstate_ptr, dg_ptr, gxw_ptr, bs_ptr, off_ptr,
                      t, tp, has_prev, H, ACC: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr):
    """dg gets the recurrent GEMM's gradient (dxr, dxz, dhn); dH [B, H] is set to the direct part z * dh."""
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.program_id(1) * BH + tl.arange(0, BH)
    n, off, n_prev, off_prev = step_rows(bs_ptr, off_ptr, t, tp, has_prev)
    m = (r < n)[:, None] & (j < H)[None, :]
    state = r[:, None] * H + j[None, :]
    dh = tl.load(gout_ptr + (off + r)[:, None] * H + j[None, :], mask=m, other=0.0).to(ACC) + tl.load(
        dstate_ptr + state, mask=m, other=0.0)
    wp = ws_ptr + (off + r)[:, None] * (4 * H) + j[None, :]
    rg = tl.load(wp, mask=m, other=0.0).to(ACC)
    z = tl.load(wp + H, mask=m, other=0.0).to(ACC)
    ng = tl.load(wp + 2 * H, mask=m, other=0.0).to(ACC)
    hn = tl.load(wp + 3 * H, mask=m, other=0.0).to(ACC)
    h_prev = prev_tile(out_ptr, h0_ptr, r, j, n, n_prev, off_prev, H).to(ACC)
    dxr, dxz, dxn, dhn, direct = cells.gru_backward(rg, z, ng, hn, h_prev, dh)
    tl.store(dstate_ptr + state, direct, mask=m)
    g_rows = (off + r)[:, None] * (3 * H) + j[None, :]
    dt = gxw_ptr.dtype.element_ty
    tl.store(dg_ptr + g_rows, dxr, mask=m)
    tl.store(dg_ptr + g_rows + H, dxz, mask=m)
    tl.store(dg_ptr + g_rows + 2 * H, dhn, mask=m)
    tl.store(gxw_ptr + g_rows, dxr.to(dt), mask=m)
    tl.store(gxw_ptr + g_rows + H, dxz.to(dt), mask=m)
    tl.store(gxw_ptr + g_rows + 2 * H, dxn.to(dt), mask=m)

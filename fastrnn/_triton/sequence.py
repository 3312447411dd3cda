"""Whole-sequence kernels: one launch runs the time loop, for hidden sizes whose W_hh fits one program.

Each program owns a tile of BB batch rows and every hidden unit, so the recurrence never needs
another program's results: W_hh (and w_hr) are loaded once into registers and the state stays
on chip across steps. Step t's rows ``[off, off + n)`` come from the device-side batch_sizes and
offsets, as in the step kernels; rows beyond n keep their state (packed sequences). The
backward kernels walk the steps the other way and carry dh (and dc) the same way.
"""
import triton
import triton.language as tl

from . import cells
from .step import prev_tile


@triton.jit
def w_tile_t(w_ptr, row0, j, k, H, K):
    """W[row0 + j, k]^T as a [len(k), len(j)] tile (the right operand of h @ W^T); zero outside."""
    return tl.load(w_ptr + (row0 + j)[None, :] * K + k[:, None], mask=(j < H)[None, :] & (k < K)[:, None], other=0.0)


@triton.jit
def w_tile(w_ptr, row0, j, k, H, K):
    """W[row0 + j, k] as a [len(j), len(k)] tile (the right operand of dgates @ W); zero outside."""
    return tl.load(w_ptr + (row0 + j)[:, None] * K + k[None, :], mask=(j < H)[:, None] & (k < K)[None, :], other=0.0)


@triton.jit
def step_at(s, T, bs_ptr, off_ptr, REVERSE: tl.constexpr, BACKWARD: tl.constexpr):
    """The s-th step processed (forward, or backward order), its rows, and the rows of the step before it."""
    if REVERSE != BACKWARD:
        t = T - 1 - s
    else:
        t = s
    if REVERSE:
        tp = t + 1
    else:
        tp = t - 1
    has_prev = (tp >= 0) & (tp < T)
    tpc = tl.minimum(tl.maximum(tp, 0), T - 1)
    n = tl.load(bs_ptr + t)
    off = tl.load(off_ptr + t)
    n_prev = tl.where(has_prev, tl.load(bs_ptr + tpc), 0)
    off_prev = tl.load(off_ptr + tpc)
    return n, off, n_prev, off_prev


@triton.jit
def rnn_seq_forward(xw_ptr, w_ptr, h0_ptr, out_ptr, hn_ptr, bs_ptr, off_ptr, T, B, H,
                    ACT: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                    BB: tl.constexpr, BH: tl.constexpr):
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.arange(0, BH)
    state = r[:, None] * H + j[None, :]
    sm = (r < B)[:, None] & (j < H)[None, :]
    wt = w_tile_t(w_ptr, 0, j, j, H, H)
    h = tl.load(h0_ptr + state, mask=sm, other=0.0).to(ACC)
    for s in range(T):
        n, off, n_prev, off_prev = step_at(s, T, bs_ptr, off_ptr, REVERSE, False)
        rm = (r < n)[:, None]
        m = rm & (j < H)[None, :]
        rows = (off + r)[:, None] * H + j[None, :]
        pre = tl.load(xw_ptr + rows, mask=m, other=0.0).to(ACC)
        pre = cells.dot(h.to(wt.dtype), wt, pre, ACC, UPCAST)
        h_new = cells.act_forward(pre, ACT).to(out_ptr.dtype.element_ty)
        tl.store(out_ptr + rows, h_new, mask=m)
        h = tl.where(rm, h_new.to(ACC), h)
    tl.store(hn_ptr + state, h.to(hn_ptr.dtype.element_ty), mask=sm)


@triton.jit
def lstm_seq_forward(xw_ptr, w_ptr, whr_ptr, h0_ptr, c0_ptr, out_ptr, hn_ptr, cn_ptr, gates_ptr, cells_ptr,
                     bs_ptr, off_ptr, T, B, H, P,
                     PROJ: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                     BB: tl.constexpr, BH: tl.constexpr, BP: tl.constexpr):
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.arange(0, BH)
    p = tl.arange(0, BP)
    hstate = r[:, None] * P + p[None, :]
    cstate = r[:, None] * H + j[None, :]
    hsm = (r < B)[:, None] & (p < P)[None, :]
    csm = (r < B)[:, None] & (j < H)[None, :]
    wi = w_tile_t(w_ptr, 0, j, p, H, P)
    wf = w_tile_t(w_ptr, H, j, p, H, P)
    wg = w_tile_t(w_ptr, 2 * H, j, p, H, P)
    wo = w_tile_t(w_ptr, 3 * H, j, p, H, P)
    if PROJ:
        whr = w_tile_t(whr_ptr, 0, p, j, P, H)  # [BH, BP]: h_raw @ w_hr^T
    h = tl.load(h0_ptr + hstate, mask=hsm, other=0.0).to(ACC)
    c = tl.load(c0_ptr + cstate, mask=csm, other=0.0).to(ACC)
    dt = out_ptr.dtype.element_ty
    for s in range(T):
        n, off, n_prev, off_prev = step_at(s, T, bs_ptr, off_ptr, REVERSE, False)
        rm = (r < n)[:, None]
        m = rm & (j < H)[None, :]
        g_rows = (off + r)[:, None] * (4 * H) + j[None, :]
        hd = h.to(wi.dtype)
        pi = cells.dot(hd, wi, tl.load(xw_ptr + g_rows, mask=m, other=0.0).to(ACC), ACC, UPCAST)
        pf = cells.dot(hd, wf, tl.load(xw_ptr + g_rows + H, mask=m, other=0.0).to(ACC), ACC, UPCAST)
        pg = cells.dot(hd, wg, tl.load(xw_ptr + g_rows + 2 * H, mask=m, other=0.0).to(ACC), ACC, UPCAST)
        po = cells.dot(hd, wo, tl.load(xw_ptr + g_rows + 3 * H, mask=m, other=0.0).to(ACC), ACC, UPCAST)
        i, f, g, o, c_new, h_raw = cells.lstm_forward(pi, pf, pg, po, c)
        tl.store(gates_ptr + g_rows, i.to(dt), mask=m)
        tl.store(gates_ptr + g_rows + H, f.to(dt), mask=m)
        tl.store(gates_ptr + g_rows + 2 * H, g.to(dt), mask=m)
        tl.store(gates_ptr + g_rows + 3 * H, o.to(dt), mask=m)
        c_new = c_new.to(dt)
        tl.store(cells_ptr + (off + r)[:, None] * H + j[None, :], c_new, mask=m)
        if PROJ:
            h_new = cells.dot(h_raw.to(dt), whr, tl.zeros((BB, BP), ACC), ACC, UPCAST).to(dt)
        else:
            h_new = h_raw.to(dt)
        tl.store(out_ptr + (off + r)[:, None] * P + p[None, :], h_new, mask=rm & (p < P)[None, :])
        h = tl.where(rm, h_new.to(ACC), h)
        c = tl.where(rm, c_new.to(ACC), c)
    tl.store(hn_ptr + hstate, h.to(dt), mask=hsm)
    tl.store(cn_ptr + cstate, c.to(dt), mask=csm)


@triton.jit
def gru_seq_forward(xw_ptr, w_ptr, bhn_ptr, h0_ptr, out_ptr, hn_ptr, ws_ptr, bs_ptr, off_ptr, T, B, H,
                    HAS_BHN: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                    BB: tl.constexpr, BH: tl.constexpr):
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.arange(0, BH)
    state = r[:, None] * H + j[None, :]
    sm = (r < B)[:, None] & (j < H)[None, :]
    wr = w_tile_t(w_ptr, 0, j, j, H, H)
    wz = w_tile_t(w_ptr, H, j, j, H, H)
    wn = w_tile_t(w_ptr, 2 * H, j, j, H, H)
    bhn = tl.zeros((BH,), ACC)
    if HAS_BHN:
        bhn = tl.load(bhn_ptr + j, mask=j < H, other=0.0).to(ACC)
    h = tl.load(h0_ptr + state, mask=sm, other=0.0).to(ACC)
    dt = out_ptr.dtype.element_ty
    zero = tl.zeros((BB, BH), ACC)
    for s in range(T):
        n, off, n_prev, off_prev = step_at(s, T, bs_ptr, off_ptr, REVERSE, False)
        rm = (r < n)[:, None]
        m = rm & (j < H)[None, :]
        x = xw_ptr + (off + r)[:, None] * (3 * H) + j[None, :]
        hd = h.to(wr.dtype)
        hr = cells.dot(hd, wr, zero, ACC, UPCAST)
        hz = cells.dot(hd, wz, zero, ACC, UPCAST)
        hn = cells.dot(hd, wn, zero, ACC, UPCAST) + bhn[None, :]
        rg, z, ng, h_new = cells.gru_forward(tl.load(x, mask=m, other=0.0).to(ACC),
                                             tl.load(x + H, mask=m, other=0.0).to(ACC),
                                             tl.load(x + 2 * H, mask=m, other=0.0).to(ACC), hr, hz, hn, h)
        w = ws_ptr + (off + r)[:, None] * (4 * H) + j[None, :]
        tl.store(w, rg.to(dt), mask=m)
        tl.store(w + H, z.to(dt), mask=m)
        tl.store(w + 2 * H, ng.to(dt), mask=m)
        tl.store(w + 3 * H, hn.to(dt), mask=m)
        h_new = h_new.to(dt)
        tl.store(out_ptr + (off + r)[:, None] * H + j[None, :], h_new, mask=m)
        h = tl.where(rm, h_new.to(ACC), h)
    tl.store(hn_ptr + state, h.to(dt), mask=sm)


@triton.jit
def rnn_seq_backward(gout_ptr, ghn_ptr, w_ptr, out_ptr, dg_ptr, gxw_ptr, gh0_ptr, bs_ptr, off_ptr, T, B, H,
                     ACT: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                     BB: tl.constexpr, BH: tl.constexpr):
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.arange(0, BH)
    state = r[:, None] * H + j[None, :]
    sm = (r < B)[:, None] & (j < H)[None, :]
    w = w_tile(w_ptr, 0, j, j, H, H)
    dh = tl.load(ghn_ptr + state, mask=sm, other=0.0).to(ACC)
    for s in range(T):
        n, off, n_prev, off_prev = step_at(s, T, bs_ptr, off_ptr, REVERSE, True)
        rm = (r < n)[:, None]
        m = rm & (j < H)[None, :]
        rows = (off + r)[:, None] * H + j[None, :]
        dh_t = tl.load(gout_ptr + rows, mask=m, other=0.0).to(ACC) + dh
        d = cells.act_backward(tl.load(out_ptr + rows, mask=m, other=0.0).to(ACC), dh_t, ACT)
        d = tl.where(m, d, 0.0)
        tl.store(dg_ptr + rows, d, mask=m)
        tl.store(gxw_ptr + rows, d.to(gxw_ptr.dtype.element_ty), mask=m)
        dh = tl.where(rm, cells.dot(d.to(w.dtype), w, tl.zeros((BB, BH), ACC), ACC, UPCAST), dh)
    tl.store(gh0_ptr + state, dh.to(gh0_ptr.dtype.element_ty), mask=sm)


@triton.jit
def lstm_seq_backward(gout_ptr, ghn_ptr, gcn_ptr, w_ptr, whr_ptr, c0_ptr, gates_ptr, cells_ptr,
                      dg_ptr, gxw_ptr, dhp_ptr, gh0_ptr, gc0_ptr, bs_ptr, off_ptr, T, B, H, P,
                      PROJ: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                      BB: tl.constexpr, BH: tl.constexpr, BP: tl.constexpr):
    """dhp (with PROJ) gets the gradient of the projected h per row, for grad_w_hr."""
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.arange(0, BH)
    p = tl.arange(0, BP)
    hstate = r[:, None] * P + p[None, :]
    cstate = r[:, None] * H + j[None, :]
    hsm = (r < B)[:, None] & (p < P)[None, :]
    csm = (r < B)[:, None] & (j < H)[None, :]
    wi = w_tile(w_ptr, 0, j, p, H, P)
    wf = w_tile(w_ptr, H, j, p, H, P)
    wg = w_tile(w_ptr, 2 * H, j, p, H, P)
    wo = w_tile(w_ptr, 3 * H, j, p, H, P)
    if PROJ:
        whr = w_tile(whr_ptr, 0, p, j, P, H)  # [BP, BH]: dh @ w_hr
    dh = tl.load(ghn_ptr + hstate, mask=hsm, other=0.0).to(ACC)
    dc = tl.load(gcn_ptr + cstate, mask=csm, other=0.0).to(ACC)
    dt = gxw_ptr.dtype.element_ty
    zero = tl.zeros((BB, BP), ACC)
    for s in range(T):
        n, off, n_prev, off_prev = step_at(s, T, bs_ptr, off_ptr, REVERSE, True)
        rm = (r < n)[:, None]
        m = rm & (j < H)[None, :]
        pm = rm & (p < P)[None, :]
        dh_t = tl.load(gout_ptr + (off + r)[:, None] * P + p[None, :], mask=pm, other=0.0).to(ACC) + dh
        if PROJ:
            tl.store(dhp_ptr + (off + r)[:, None] * P + p[None, :], dh_t, mask=pm)
            dh_raw = cells.dot(dh_t.to(whr.dtype), whr, tl.zeros((BB, BH), ACC), ACC, UPCAST)
        else:
            dh_raw = dh_t
        g_rows = (off + r)[:, None] * (4 * H) + j[None, :]
        i = tl.load(gates_ptr + g_rows, mask=m, other=0.0).to(ACC)
        f = tl.load(gates_ptr + g_rows + H, mask=m, other=0.0).to(ACC)
        g = tl.load(gates_ptr + g_rows + 2 * H, mask=m, other=0.0).to(ACC)
        o = tl.load(gates_ptr + g_rows + 3 * H, mask=m, other=0.0).to(ACC)
        c = tl.load(cells_ptr + (off + r)[:, None] * H + j[None, :], mask=m, other=0.0).to(ACC)
        c_prev = prev_tile(cells_ptr, c0_ptr, r, j, n, n_prev, off_prev, H).to(ACC)
        di, df, dgg, do, dc_prev = cells.lstm_backward(i, f, g, o, c_prev, c, dh_raw, dc)
        di = tl.where(m, di, 0.0)
        df = tl.where(m, df, 0.0)
        dgg = tl.where(m, dgg, 0.0)
        do = tl.where(m, do, 0.0)
        tl.store(dg_ptr + g_rows, di, mask=m)
        tl.store(dg_ptr + g_rows + H, df, mask=m)
        tl.store(dg_ptr + g_rows + 2 * H, dgg, mask=m)
        tl.store(dg_ptr + g_rows + 3 * H, do, mask=m)
        tl.store(gxw_ptr + g_rows, di.to(dt), mask=m)
        tl.store(gxw_ptr + g_rows + H, df.to(dt), mask=m)
        tl.store(gxw_ptr + g_rows + 2 * H, dgg.to(dt), mask=m)
        tl.store(gxw_ptr + g_rows + 3 * H, do.to(dt), mask=m)
        wd = wi.dtype
        dh_new = cells.dot(di.to(wd), wi, zero, ACC, UPCAST)
        dh_new = cells.dot(df.to(wd), wf, dh_new, ACC, UPCAST)
        dh_new = cells.dot(dgg.to(wd), wg, dh_new, ACC, UPCAST)
        dh_new = cells.dot(do.to(wd), wo, dh_new, ACC, UPCAST)
        dh = tl.where(rm, dh_new, dh)
        dc = tl.where(rm, dc_prev, dc)
    tl.store(gh0_ptr + hstate, dh.to(dt), mask=hsm)
    tl.store(gc0_ptr + cstate, dc.to(dt), mask=csm)


@triton.jit
def gru_seq_backward(gout_ptr, ghn_ptr, w_ptr, h0_ptr, out_ptr, ws_ptr, dg_ptr, gxw_ptr, gh0_ptr,
                     bs_ptr, off_ptr, T, B, H,
                     REVERSE: tl.constexpr, ACC: tl.constexpr, UPCAST: tl.constexpr,
                     BB: tl.constexpr, BH: tl.constexpr):
    """dg gets the recurrent GEMM's gradient (dxr, dxz, dhn), gxw the input's (dxr, dxz, dxn)."""
    r = tl.program_id(0) * BB + tl.arange(0, BB)
    j = tl.arange(0, BH)
    state = r[:, None] * H + j[None, :]
    sm = (r < B)[:, None] & (j < H)[None, :]
    wr = w_tile(w_ptr, 0, j, j, H, H)
    wz = w_tile(w_ptr, H, j, j, H, H)
    wn = w_tile(w_ptr, 2 * H, j, j, H, H)
    dh = tl.load(ghn_ptr + state, mask=sm, other=0.0).to(ACC)
    dt = gxw_ptr.dtype.element_ty
    for s in range(T):
        n, off, n_prev, off_prev = step_at(s, T, bs_ptr, off_ptr, REVERSE, True)
        rm = (r < n)[:, None]
        m = rm & (j < H)[None, :]
        dh_t = tl.load(gout_ptr + (off + r)[:, None] * H + j[None, :], mask=m, other=0.0).to(ACC) + dh
        wp = ws_ptr + (off + r)[:, None] * (4 * H) + j[None, :]
        rg = tl.load(wp, mask=m, other=0.0).to(ACC)
        z = tl.load(wp + H, mask=m, other=0.0).to(ACC)
        ng = tl.load(wp + 2 * H, mask=m, other=0.0).to(ACC)
        hn = tl.load(wp + 3 * H, mask=m, other=0.0).to(ACC)
        h_prev = prev_tile(out_ptr, h0_ptr, r, j, n, n_prev, off_prev, H).to(ACC)
        dxr, dxz, dxn, dhn, direct = cells.gru_backward(rg, z, ng, hn, h_prev, dh_t)
        dxr = tl.where(m, dxr, 0.0)
        dxz = tl.where(m, dxz, 0.0)
        dhn = tl.where(m, dhn, 0.0)
        g_rows = (off + r)[:, None] * (3 * H) + j[None, :]
        tl.store(dg_ptr + g_rows, dxr, mask=m)
        tl.store(dg_ptr + g_rows + H, dxz, mask=m)
        tl.store(dg_ptr + g_rows + 2 * H, dhn, mask=m)
        tl.store(gxw_ptr + g_rows, dxr.to(dt), mask=m)
        tl.store(gxw_ptr + g_rows + H, dxz.to(dt), mask=m)
        tl.store(gxw_ptr + g_rows + 2 * H, dxn.to(dt), mask=m)
        wd = wr.dtype
        dh_new = cells.dot(dxr.to(wd), wr, direct, ACC, UPCAST)
        dh_new = cells.dot(dxz.to(wd), wz, dh_new, ACC, UPCAST)
        dh_new = cells.dot(dhn.to(wd), wn, dh_new, ACC, UPCAST)
        dh = tl.where(rm, dh_new, dh)
    tl.store(gh0_ptr + state, dh.to(dt), mask=sm)

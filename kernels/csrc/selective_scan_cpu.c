/* Selective scan on CPU: forward and backward of kernel.md sections 2 and 3, float32 state and arithmetic.
 *
 * Layout: u, delta, z, out, du, ddelta, dz: (batch, KD, L); A: (KD, N); B, C: (batch, G, N, L); route: (K, L')
 * int64 with -1 = padding step. All contiguous float32.
 *
 * Channels are processed in blocks of LANES consecutive channels that share one route and one B/C group; a block's
 * values live in `vf` vectors (GCC/Clang vector extensions), one lane per channel, so every step is a handful of
 * vector instructions, the exponential included (`vexp2` below, branch-free; libm's expf is scalar). Decays are
 * exp2(delta * A * log2 e) with A pre-scaled once per block, which saves the range-reduction multiply-adds.
 *
 * The forward saves the state at the start of every chunk of T steps but the first: (batch, KD, n_chunks - 1, N).
 * The backward walks chunks in reverse; for each chunk it recomputes states and decays from the saved start (one
 * exp per element) and runs the reverse scan. dB/dC are summed over the blocks of a "part" (up to blocks_per_part
 * blocks of one segment) lane-wise, then over lanes, into per-part partials the caller sums in a fixed order:
 * gradients are deterministic and independent of the thread count.
 *
 * The caller splits work into item ranges [begin, end) and runs disjoint ranges on several threads.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16
#define ALIGN 64

typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(int32_t))));

typedef struct {
    const float *u, *delta, *A, *B, *C, *D, *z, *delta_bias;
    const int64_t *route;
    float *out, *last_state, *chunk_states;
    const float *grad_out;
    float *du, *ddelta, *dz, *dA, *dB, *dC, *dD, *ddelta_bias;
    int64_t batch, channels, length, steps, state, groups, routes, segments, chunk, blocks_per_part;
    int32_t delta_softplus;
} ScanArgs;

static inline vf splat(float c) { return (vf){0} + c; }
static inline vf vsel(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }

/* exp(x), about 2 ulp (Cody-Waite reduction, degree-6 polynomial). Inputs are clamped to where the result is a
 * normal float, so exp(-1000) gives 1.2e-38 instead of 0: harmless as a decay factor. */
static inline vf vexp(vf x) {
    x = vsel(x < -87.33654f, splat(-87.33654f), x);
    x = vsel(x > 88.37626f, splat(88.37626f), x);
    const vf magic = splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to the nearest integer */
    vf shifted = x * 1.44269504088896341f + magic;
    vf n = shifted - magic;
    vi ni = (vi)shifted - (vi)magic;
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * (vf)((ni + 127) << 23);
}

/* 2^x, about 2 ulp: x = n + f with |f| <= 1/2, 2^f by its degree-6 Taylor polynomial (error < 1.2e-7). Clamped
 * like vexp, so 2^-1000 gives 1.2e-38. */
static inline vf vexp2(vf x) {
    x = vsel(x < -126.0f, splat(-126.0f), x);
    x = vsel(x > 127.0f, splat(127.0f), x);
    const vf magic = splat(12582912.0f);
    vf shifted = x + magic;
    vf n = shifted - magic;
    vi ni = (vi)shifted - (vi)magic;
    vf f = x - n;
    vf p = splat(1.5403530393381609e-4f);
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910071e-1f;
    p = p * f + 6.9314718055994531e-1f;
    p = p * f + 1.0f;
    return p * (vf)((ni + 127) << 23);
}

/* log(x) for normal positive x, about 2 ulp (mantissa in [sqrt(1/2), sqrt(2)), polynomial in m - 1). */
static inline vf vlog(vf x) {
    vi bits = (vi)x;
    vi e = ((bits >> 23) & 0xff) - 127;
    vf m = (vf)((bits & 0x007fffff) | 0x3f800000);
    vi big = m > 1.41421356f;
    m = vsel(big, m * 0.5f, m);
    e = e - big; /* big is -1 where true */
    vf r = m - 1.0f;
    vf p = splat(7.0376836292e-2f);
    p = p * r - 1.1514610310e-1f;
    p = p * r + 1.1676998740e-1f;
    p = p * r - 1.2420140846e-1f;
    p = p * r + 1.4249322787e-1f;
    p = p * r - 1.6668057665e-1f;
    p = p * r + 2.0000714765e-1f;
    p = p * r - 2.4999993993e-1f;
    p = p * r + 3.3333331174e-1f;
    vf r2 = r * r;
    vf y = p * r * r2 - 0.5f * r2 + r;
    return y + __builtin_convertvector(e, vf) * 0.693147180559945f;
}

/* softplus with threshold 20 (mamba_ssm's): above 20 it is the identity. log1p(y) as log(1 + y) corrected for the
 * rounding of 1 + y, accurate for tiny y = exp(x). */
static inline vf vsoftplus(vf x) {
    vi above = x > 20.0f;
    vf y = vexp(vsel(above, splat(20.0f), x));
    vf w = y + 1.0f;
    vf lp = vlog(w) - ((w - 1.0f) - y) / w;
    return vsel(above, x, lp);
}

static inline vf vsigmoid(vf x) { return 1.0f / (vexp(-x) + 1.0f); }

static inline float hsum(vf v) {
    float s = 0.0f;
    for (int j = 0; j < LANES; j++) s += v[j];
    return s;
}

static void *alloc(size_t bytes) { return aligned_alloc(ALIGN, (bytes + ALIGN - 1) / ALIGN * ALIGN); }

/* One block of LANES channels: which channels, route row and group. */
typedef struct {
    int64_t b, d0, lanes, route_row, group;
} Block;

static inline int64_t blocks_per_segment(const ScanArgs *a) {
    return (a->channels / a->segments + LANES - 1) / LANES;
}

static Block block_of(const ScanArgs *a, int64_t b, int64_t seg, int64_t blk) {
    int64_t per_seg = a->channels / a->segments;
    Block k;
    k.b = b;
    k.d0 = seg * per_seg + blk * LANES;
    k.lanes = per_seg - blk * LANES < LANES ? per_seg - blk * LANES : LANES;
    k.route_row = seg * a->routes / a->segments;
    k.group = seg * a->groups / a->segments;
    return k;
}

static inline int64_t n_chunks(const ScanArgs *a) { return (a->steps + a->chunk - 1) / a->chunk; }

static inline int64_t chunk_state_index(const ScanArgs *a, const Block *k, int64_t j, int64_t ci) {
    return (((k->b * a->channels) + k->d0 + j) * (n_chunks(a) - 1) + ci - 1) * a->state;
}

/* Per-block parameters: A as N vectors, bias and D as one vector each; lanes past k->lanes are zero. */
typedef struct {
    vf *A, *A2; /* A and A * log2(e): decays are exp2(delta * A2) */
    vf bias, D;
} Params;

static void load_params(const ScanArgs *a, const Block *k, Params *p) {
    const int64_t N = a->state;
    p->bias = p->D = splat(0.0f);
    for (int64_t n = 0; n < N; n++) p->A[n] = splat(0.0f);
    for (int64_t j = 0; j < k->lanes; j++) {
        int64_t d = k->d0 + j;
        for (int64_t n = 0; n < N; n++) p->A[n][j] = a->A[d * N + n];
    }
    for (int64_t n = 0; n < N; n++) p->A2[n] = p->A[n] * 1.44269504088896341f;
    for (int64_t j = 0; j < k->lanes; j++) {
        int64_t d = k->d0 + j;
        if (a->delta_bias) p->bias[j] = a->delta_bias[d];
        if (a->D) p->D[j] = a->D[d];
    }
}

/* A chunk's inputs gathered step-major: per step one vector per tensor, B and C as T x N scalars. Lanes past
 * k->lanes and padding steps read zero (u, pre-bias delta, B, C, z, grad): the scan identity after bias. */
typedef struct {
    vf *x, *dt, *u, *dtu, *z, *g;
    float *Bt, *Ct;
    int64_t *tok;
} Chunk;

static int alloc_chunk(Chunk *c, int64_t T, int64_t N) {
    vf *v = alloc(sizeof(vf) * 6 * (size_t)T);
    float *s = alloc(sizeof(float) * 2 * (size_t)(T * N));
    c->tok = alloc(sizeof(int64_t) * (size_t)T);
    if (!v || !s || !c->tok) {
        free(v);
        free(s);
        free(c->tok);
        return -1;
    }
    c->x = v, c->dt = v + T, c->u = v + 2 * T, c->dtu = v + 3 * T, c->z = v + 4 * T, c->g = v + 5 * T;
    c->Bt = s, c->Ct = s + T * N;
    return 0;
}

static void free_chunk(Chunk *c) {
    free(c->x);
    free(c->Bt);
    free(c->tok);
}

static void load_chunk(const ScanArgs *a, const Block *k, const Params *p, int64_t t0, int64_t tn, Chunk *c,
                       int with_grad) {
    const int64_t L = a->length, N = a->state;
    const float *Bg = a->B + (k->b * a->groups + k->group) * N * L;
    const float *Cg = a->C + (k->b * a->groups + k->group) * N * L;
    const int64_t row0 = (k->b * a->channels + k->d0) * L;
    for (int64_t t = 0; t < tn; t++) {
        int64_t tok = a->route ? a->route[k->route_row * a->steps + t0 + t] : t0 + t;
        vf x = {0}, u = {0}, z = {0}, g = {0};
        if (tok >= 0) {
            for (int64_t j = 0; j < k->lanes; j++) {
                int64_t off = row0 + j * L + tok;
                x[j] = a->delta[off];
                u[j] = a->u[off];
                if (a->z) z[j] = a->z[off];
                if (with_grad) g[j] = a->grad_out[off];
            }
        }
        c->tok[t] = tok;
        c->x[t] = x + p->bias;
        c->u[t] = u, c->z[t] = z, c->g[t] = g;
        for (int64_t n = 0; n < N; n++) {
            c->Bt[t * N + n] = tok >= 0 ? Bg[n * L + tok] : 0.0f;
            c->Ct[t * N + n] = tok >= 0 ? Cg[n * L + tok] : 0.0f;
        }
    }
    for (int64_t t = 0; t < tn; t++) {
        c->dt[t] = a->delta_softplus ? vsoftplus(c->x[t]) : c->x[t];
        c->dtu[t] = c->dt[t] * c->u[t];
    }
}

/* Forward for items [begin, end); item = (b, segment, block). Returns 0, or -1 if out of memory. */
int scan_forward(const ScanArgs *a, int64_t begin, int64_t end) {
    const int64_t N = a->state, T = a->chunk, L = a->length, n_chunk = n_chunks(a);
    const int64_t per_seg = blocks_per_segment(a);
    vf *mem = alloc(sizeof(vf) * (size_t)(3 * N + T));
    Chunk c;
    if (!mem || alloc_chunk(&c, T, N)) {
        free(mem);
        return -1;
    }
    Params p = {.A = mem, .A2 = mem + N};
    vf *h = mem + 2 * N, *y = h + N;
    for (int64_t item = begin; item < end; item++) {
        int64_t b = item / (a->segments * per_seg), rest = item % (a->segments * per_seg);
        Block k = block_of(a, b, rest / per_seg, rest % per_seg);
        const int64_t row0 = (b * a->channels + k.d0) * L;
        load_params(a, &k, &p);
        for (int64_t n = 0; n < N; n++) h[n] = splat(0.0f);
        for (int64_t ci = 0; ci < n_chunk; ci++) {
            int64_t t0 = ci * T, tn = a->steps - t0 < T ? a->steps - t0 : T;
            if (ci > 0 && a->chunk_states)
                for (int64_t j = 0; j < k.lanes; j++)
                    for (int64_t n = 0; n < N; n++) a->chunk_states[chunk_state_index(a, &k, j, ci) + n] = h[n][j];
            load_chunk(a, &k, &p, t0, tn, &c, 0);
            for (int64_t t = 0; t < tn; t++) {
                const vf dt = c.dt[t], dtu = c.dtu[t];
                const float *Bt = c.Bt + t * N, *Ct = c.Ct + t * N;
                vf y0 = {0}, y1 = {0}; /* two accumulators halve the add chain over n */
                int64_t n = 0;
                for (; n + 1 < N; n += 2) {
                    h[n] = vexp2(dt * p.A2[n]) * h[n] + dtu * Bt[n];
                    h[n + 1] = vexp2(dt * p.A2[n + 1]) * h[n + 1] + dtu * Bt[n + 1];
                    y0 += Ct[n] * h[n];
                    y1 += Ct[n + 1] * h[n + 1];
                }
                if (n < N) {
                    h[n] = vexp2(dt * p.A2[n]) * h[n] + dtu * Bt[n];
                    y0 += Ct[n] * h[n];
                }
                vf out = y0 + y1 + p.D * c.u[t];
                y[t] = a->z ? out * c.z[t] * vsigmoid(c.z[t]) : out;
            }
            for (int64_t t = 0; t < tn; t++) {
                if (c.tok[t] < 0) continue;
                for (int64_t j = 0; j < k.lanes; j++) a->out[row0 + j * L + c.tok[t]] = y[t][j];
            }
        }
        if (a->last_state)
            for (int64_t j = 0; j < k.lanes; j++)
                for (int64_t n = 0; n < N; n++) a->last_state[((b * a->channels) + k.d0 + j) * N + n] = h[n][j];
    }
    free(mem);
    free_chunk(&c);
    return 0;
}

/* Running sums of one block across the chunks of the backward. */
typedef struct {
    vf *carry; /* decay[t+1] * lambda[t+1] per n, the reverse-scan state */
    vf *dA;    /* per n */
    vf dD, dbias;
} BlockGrad;

/* Backward of one block over one chunk: recompute states and decays, reverse scan, write du/ddelta/dz, add
 * the block's dB/dC terms lane-wise into dBl/dCl (T x N vectors). */
static void backward_chunk(const ScanArgs *a, const Block *k, const Params *p, int64_t ci, Chunk *c, vf *h,
                           vf *dec, vf *hs, vf *dBl, vf *dCl, vf *dy, vf *sB, vf *sD, BlockGrad *bg) {
    const int64_t N = a->state, T = a->chunk, L = a->length;
    const int64_t t0 = ci * T, tn = a->steps - t0 < T ? a->steps - t0 : T;
    const int64_t row0 = (k->b * a->channels + k->d0) * L;
    for (int64_t n = 0; n < N; n++) h[n] = splat(0.0f);
    if (ci > 0)
        for (int64_t j = 0; j < k->lanes; j++)
            for (int64_t n = 0; n < N; n++) h[n][j] = a->chunk_states[chunk_state_index(a, k, j, ci) + n];
    load_chunk(a, k, p, t0, tn, c, 1);

    /* recompute: states and decays of every step, and dy (gate backward needs the pre-gate output y) */
    for (int64_t t = 0; t < tn; t++) {
        const vf dt = c->dt[t], dtu = c->dtu[t];
        const float *Bt = c->Bt + t * N, *Ct = c->Ct + t * N;
        vf *dect = dec + t * N, *hst = hs + t * N;
        vf y0 = {0}, y1 = {0};
        int64_t n = 0;
        for (; n + 1 < N; n += 2) {
            vf e0 = vexp2(dt * p->A2[n]), e1 = vexp2(dt * p->A2[n + 1]);
            h[n] = e0 * h[n] + dtu * Bt[n];
            h[n + 1] = e1 * h[n + 1] + dtu * Bt[n + 1];
            dect[n] = e0, dect[n + 1] = e1;
            hst[n] = h[n], hst[n + 1] = h[n + 1];
            y0 += Ct[n] * h[n];
            y1 += Ct[n + 1] * h[n + 1];
        }
        if (n < N) {
            vf e0 = vexp2(dt * p->A2[n]);
            h[n] = e0 * h[n] + dtu * Bt[n];
            dect[n] = e0, hst[n] = h[n];
            y0 += Ct[n] * h[n];
        }
        const vf g = c->g[t];
        if (a->z) {
            /* dy = g silu(z);  dz = g y s (1 + z (1 - s)) with y the pre-gate output, s = sigmoid(z) */
            const vf zt = c->z[t], s = vsigmoid(zt), y = y0 + y1 + p->D * c->u[t];
            dy[t] = g * zt * s;
            c->z[t] = g * y * s * (zt * (1.0f - s) + 1.0f); /* z slot now holds dz */
        } else {
            dy[t] = g;
        }
        bg->dD += dy[t] * c->u[t];
    }

    /* reverse scan: lambda[t] = dy[t] C[t] + decay[t+1] lambda[t+1] */
    for (int64_t t = tn - 1; t >= 0; t--) {
        const vf dt = c->dt[t], dtu = c->dtu[t], dyt = dy[t];
        const float *Bt = c->Bt + t * N, *Ct = c->Ct + t * N;
        const vf *dect = dec + t * N, *hst = hs + t * N;
        vf *dBt = dBl + t * N, *dCt = dCl + t * N;
        vf sumB = {0}, sumD = {0};
        for (int64_t n = 0; n < N; n++) {
            const vf lam = dyt * Ct[n] + bg->carry[n];
            const vf ah = hst[n] - dtu * Bt[n]; /* decay * previous state, without dividing by the decay */
            sumB += lam * Bt[n];
            sumD += lam * p->A[n] * ah;
            bg->dA[n] += lam * dt * ah;
            bg->carry[n] = dect[n] * lam;
            dBt[n] += lam * dtu;
            dCt[n] += dyt * hst[n];
        }
        sB[t] = sumB;
        sD[t] = sumD;
    }

    for (int64_t t = 0; t < tn; t++) {
        const vf dDelta = sD[t] + c->u[t] * sB[t];
        const vf x = c->x[t];
        const vf dd = a->delta_softplus ? vsel(x <= 20.0f, dDelta * vsigmoid(x), dDelta) : dDelta;
        bg->dbias += dd;
        const vf du = c->dt[t] * sB[t] + p->D * dy[t];
        const int64_t tok = c->tok[t];
        if (tok < 0) continue;
        for (int64_t j = 0; j < k->lanes; j++) {
            int64_t off = row0 + j * L + tok;
            a->du[off] = du[j];
            a->ddelta[off] = dd[j];
            if (a->z) a->dz[off] = c->z[t][j];
        }
    }
}

/* Backward for items [begin, end); item = (b, part). Writes du, ddelta, dz at token positions; per-(b, channel)
 * partials dA (batch, KD, N), dD and ddelta_bias (batch, KD); per-(b, part) partials dB, dC (batch, parts, N, L). */
int scan_backward(const ScanArgs *a, int64_t begin, int64_t end) {
    const int64_t N = a->state, T = a->chunk, L = a->length, n_chunk = n_chunks(a);
    const int64_t per_seg = blocks_per_segment(a), per_part = a->blocks_per_part;
    const int64_t parts_per_seg = (per_seg + per_part - 1) / per_part;
    const size_t TN = (size_t)(T * N);
    /* per block: A, A2, carry, dA (N each); shared: h (N), dec, hs, dBl, dCl (T*N each), dy, sB, sD (T each) */
    vf *mem = alloc(sizeof(vf) * ((size_t)(4 * per_part + 1) * N + 4 * TN + 3 * (size_t)T));
    BlockGrad *bgs = alloc(sizeof(BlockGrad) * (size_t)per_part);
    Params *ps = alloc(sizeof(Params) * (size_t)per_part);
    Chunk c;
    if (!mem || !bgs || !ps || alloc_chunk(&c, T, N)) {
        free(mem);
        free(bgs);
        free(ps);
        return -1;
    }
    vf *h = mem + 4 * per_part * N, *dec = h + N, *hs = dec + TN, *dBl = hs + TN, *dCl = dBl + TN;
    vf *dy = dCl + TN, *sB = dy + T, *sD = sB + T;
    for (int64_t i = 0; i < per_part; i++) {
        ps[i].A = mem + 4 * i * N;
        ps[i].A2 = ps[i].A + N;
        bgs[i].carry = ps[i].A2 + N;
        bgs[i].dA = bgs[i].carry + N;
    }
    for (int64_t item = begin; item < end; item++) {
        const int64_t b = item / (a->segments * parts_per_seg), rest = item % (a->segments * parts_per_seg);
        const int64_t seg = rest / parts_per_seg, part = rest % parts_per_seg;
        const int64_t blk0 = part * per_part;
        const int64_t nblk = per_seg - blk0 < per_part ? per_seg - blk0 : per_part;
        float *dBp = a->dB + (b * a->segments * parts_per_seg + rest) * N * L;
        float *dCp = a->dC + (b * a->segments * parts_per_seg + rest) * N * L;
        Block ks[nblk];
        for (int64_t i = 0; i < nblk; i++) {
            ks[i] = block_of(a, b, seg, blk0 + i);
            load_params(a, &ks[i], &ps[i]);
            for (int64_t n = 0; n < N; n++) bgs[i].carry[n] = bgs[i].dA[n] = splat(0.0f);
            bgs[i].dD = bgs[i].dbias = splat(0.0f);
        }
        for (int64_t ci = n_chunk - 1; ci >= 0; ci--) {
            const int64_t tn = a->steps - ci * T < T ? a->steps - ci * T : T;
            for (size_t i = 0; i < (size_t)tn * N; i++) dBl[i] = dCl[i] = splat(0.0f);
            for (int64_t i = 0; i < nblk; i++)
                backward_chunk(a, &ks[i], &ps[i], ci, &c, h, dec, hs, dBl, dCl, dy, sB, sD, &bgs[i]);
            /* c.tok still holds this chunk's tokens (same route row for every block of the part) */
            for (int64_t t = 0; t < tn; t++) {
                if (c.tok[t] < 0) continue;
                for (int64_t n = 0; n < N; n++) {
                    dBp[n * L + c.tok[t]] = hsum(dBl[t * N + n]);
                    dCp[n * L + c.tok[t]] = hsum(dCl[t * N + n]);
                }
            }
        }
        for (int64_t i = 0; i < nblk; i++) {
            for (int64_t j = 0; j < ks[i].lanes; j++) {
                int64_t d = ks[i].d0 + j;
                for (int64_t n = 0; n < N; n++) a->dA[(b * a->channels + d) * N + n] = bgs[i].dA[n][j];
                a->dD[b * a->channels + d] = bgs[i].dD[j];
                a->ddelta_bias[b * a->channels + d] = bgs[i].dbias[j];
            }
        }
    }
    free(mem);
    free(bgs);
    free(ps);
    free_chunk(&c);
    return 0;
}

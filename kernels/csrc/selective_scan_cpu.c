/* Selective scan on CPU: the recurrence kernels/reference.py defines, and its gradients (what autograd gives
 * through the reference's loop), in float32 state and arithmetic.
 *
 * Layout: u, delta, z, out, du, ddelta, dz: (batch, KD, L); A: (KD, N); B, C: (batch, G, N, L); route: (K, L')
 * int64 with -1 = padding step. All contiguous float32. u may instead be shared by the routes: (batch, KD/S, L) for S
 * dividing K, channel d reading u row d % u_channels (u_channels = KD/S); du stays (batch, KD, L), the caller sums
 * the channels reading one row.
 *
 * Channels are processed in blocks of LANES consecutive channels that share one route and one B/C group; a block's
 * values live in `vf` vectors (GCC/Clang vector extensions), one lane per channel, so every step is a handful of
 * vector instructions, the exponential included (`vexp2` below, branch-free; libm's expf is scalar). Decays are
 * exp2(delta * A * log2 e) with A pre-scaled once per block, which saves the range-reduction multiply-adds.
 *
 * Work is split into parts: up to blocks_per_part blocks of one segment (same route row, same B/C group). A part
 * runs chunk by chunk (T steps); per chunk it reads the route and copies B and C at the chunk's tokens once for all
 * its blocks, then runs each block over the chunk. Before the N-loop a block's u, delta, z (and the incoming
 * gradient) are gathered step-major into small buffers; the lines the next block will read are prefetched during
 * the current block's N-loop, spread over its steps. Without that prefetch the gathers waited on memory: at the
 * Vim-S shape (8, 1536, 197, 16) one forward spent 5 of 22 ms in them (2-core Zen 4 container, one thread).
 *
 * The forward saves the state at the start of every chunk but the first: (batch, KD, n_chunks - 1, N).
 * The backward walks chunks in reverse; for each chunk it recomputes states and decays from the saved start (one
 * exp per element) and runs the reverse scan. dB/dC are summed over the blocks of a part lane-wise, then over
 * lanes, into per-part partials the caller sums in a fixed order: gradients are deterministic and independent of
 * the thread count (the backward's parts never depend on it; the forward's may, it has no cross-block sums).
 *
 * The caller splits the parts into item ranges [begin, end) and runs disjoint ranges on several threads: built with
 * OpenMP, on the process's OpenMP team (scan_*_parallel), else on threads of its own.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define LANES 16
#define ALIGN 64
#define LINE_FLOATS 16 /* floats per 64-byte cache line */

typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(int32_t))));

typedef struct {
    const float *u, *delta, *A, *B, *C, *D, *z, *delta_bias;
    const int64_t *route;
    float *out, *last_state, *chunk_states;
    const float *grad_out;
    float *du, *ddelta, *dz, *dA, *dB, *dC, *dD, *ddelta_bias;
    int64_t batch, channels, u_channels, length, steps, state, groups, routes, segments, chunk, blocks_per_part;
    int32_t delta_softplus;
} ScanArgs;

static inline vf splat(float c) { return (vf){0} + c; }
static inline vf vsel(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }
/* Clamps that keep a NaN x: every comparison with NaN is false, so the select falls through to x (the other order,
 * vsel(x > bound, x, bound), turned NaN into the bound and hid NaN deltas: issue 20). */
static inline vf vmax(vf x, vf bound) { return vsel(x < bound, bound, x); }
static inline vf vmin(vf x, vf bound) { return vsel(x > bound, bound, x); }

/* 2^f for |f| <= 1/2: degree-6 Taylor polynomial, relative error < 1.2e-7. */
static inline vf exp2_poly(vf f) {
    vf p = splat(1.5403530393381609e-4f);
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910071e-1f;
    p = p * f + 6.9314718055994531e-1f;
    return p * f + 1.0f;
}

/* e^r for |r| <= ln(2)/2: degree-6 polynomial (Cephes expf coefficients), about 1 ulp. */
static inline vf exp_poly(vf r) {
    vf p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r + 1.0f;
}

#if defined(__AVX512F__)
/* x = n + f, n = round(x). vscalefps multiplies by 2^n in one instruction and saturates correctly (2^-1000 = 0,
 * 2^1000 = inf), so 2^x needs no clamps: 10 vector operations instead of 20 for round-by-magic-number, clamps and
 * exponent-bit assembly. On the N-loop of the forward this was 15 % of the time (Vim-S shape, Zen 4). */
static inline vf vround(vf x) {
    return (vf)_mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline vf vscale2(vf p, vf n) { return (vf)_mm512_scalef_ps((__m512)p, (__m512)n); }

/* 2^x, about 2 ulp for any finite x; -inf gives 0, +inf gives inf and NaN stays NaN (vscalefps's special cases). */
static inline vf vexp2(vf x) {
    const vf n = vround(x);
    return vscale2(exp2_poly(x - n), n);
}
#else
static inline vf vround(vf x) {
    const vf magic = splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to the nearest integer */
    return (x + magic) - magic;
}
/* p * 2^n for integer-valued n in [-127, 128]: the exponent field of 2^n, so n = -127 gives 0 and n = 128 gives inf.
 * A NaN n converts to some integer; p is NaN then and so is the product. */
static inline vf vscale2(vf p, vf n) { return p * (vf)((__builtin_convertvector(n, vi) + 127) << 23); }

/* 2^x, about 2 ulp. Clamped to [-127, 128] so that -inf gives 0, +inf gives inf and NaN stays NaN; below -126.5
 * the result is 0 instead of a subnormal (harmless as a decay), from 127.5 on it is inf a little before 2^x
 * overflows. */
static inline vf vexp2(vf x) {
    x = vmax(x, splat(-127.0f));
    x = vmin(x, splat(128.0f));
    const vf n = vround(x);
    return vscale2(exp2_poly(x - n), n);
}
#endif

/* exp(x), about 2 ulp (Cody-Waite reduction by ln 2 in two parts). Clamped so that -inf gives 0, +inf gives inf and
 * NaN stays NaN (without AVX-512: 0 below -87.7 instead of a subnormal, inf from 88.4 on, as in vexp2): only used
 * on per-step values, never in the N-loop. */
static inline vf vexp(vf x) {
#if defined(__AVX512F__)
    x = vmax(x, splat(-104.0f));
#else
    x = vmax(x, splat(-88.0f));
#endif
    x = vmin(x, splat(89.0f));
    const vf n = vround(x * 1.44269504088896341f);
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    return vscale2(exp_poly(r), n);
}

/* log(x) for normal positive x, about 2 ulp (mantissa in [sqrt(1/2), sqrt(2)), polynomial in m - 1). A NaN x gives a
 * finite number (its bits read as exponent 128): vsoftplus, the only caller, carries the NaN in its correction term
 * instead; selecting x back here cost about 1.5 % of the forward at N = 8 (Zen 4, in-process A/B, thread CPU time). */
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
 * rounding of 1 + y, accurate for tiny y = exp(x). NaN is not above 20: vexp keeps it and the correction term
 * ((w - 1) - y) / w makes the result NaN (vlog alone would not). */
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

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static inline int64_t blocks_per_segment(const ScanArgs *a) {
    return (a->channels / a->segments + LANES - 1) / LANES;
}

static inline int64_t parts_per_segment(const ScanArgs *a) {
    return (blocks_per_segment(a) + a->blocks_per_part - 1) / a->blocks_per_part;
}

static inline int64_t n_chunks(const ScanArgs *a) { return (a->steps + a->chunk - 1) / a->chunk; }

/* Up to blocks_per_part blocks of LANES channels of one segment: one route row, one B/C group. */
typedef struct {
    int64_t b, seg, index, blk0, nblk, route_row, group;
} Part;

/* item = (b, segment, part) */
static Part part_of(const ScanArgs *a, int64_t item) {
    const int64_t per_seg = blocks_per_segment(a), parts = parts_per_segment(a);
    Part p;
    p.b = item / (a->segments * parts);
    p.seg = item % (a->segments * parts) / parts;
    p.index = item % (a->segments * parts);
    p.blk0 = item % parts * a->blocks_per_part;
    p.nblk = min64(per_seg - p.blk0, a->blocks_per_part);
    p.route_row = p.seg * a->routes / a->segments;
    p.group = p.seg * a->groups / a->segments;
    return p;
}

/* One block of LANES channels: its first channel, number of channels and offset of its first row, in the
 * (batch, KD, L) tensors and in u (the same unless u is shared by the routes). A block never straddles two routes,
 * so its u rows are consecutive too. */
typedef struct {
    int64_t d0, lanes, row0, urow0;
} Block;

static Block block_of(const ScanArgs *a, const Part *p, int64_t i) {
    const int64_t per_seg = a->channels / a->segments;
    Block k;
    k.d0 = p->seg * per_seg + (p->blk0 + i) * LANES;
    k.lanes = min64(per_seg - (p->blk0 + i) * LANES, LANES);
    k.row0 = (p->b * a->channels + k.d0) * a->length;
    k.urow0 = (p->b * a->u_channels + k.d0 % a->u_channels) * a->length;
    return k;
}

static inline int64_t chunk_state_index(const ScanArgs *a, int64_t b, int64_t d, int64_t ci) {
    return ((b * a->channels + d) * (n_chunks(a) - 1) + ci - 1) * a->state;
}

/* The tokens of steps [t0, t0 + tn) of a route row (t0 + t without a route). */
static inline int64_t token(const ScanArgs *a, int64_t route_row, int64_t s) {
    return a->route ? a->route[route_row * a->steps + s] : s;
}

/* Smallest and largest token of chunk ci (lo > hi if it has only padding). */
static void token_range(const ScanArgs *a, int64_t route_row, int64_t ci, int64_t *lo, int64_t *hi) {
    const int64_t t0 = ci * a->chunk, t1 = min64(t0 + a->chunk, a->steps);
    if (!a->route) {
        *lo = t0, *hi = t1 - 1;
        return;
    }
    *lo = a->length, *hi = -1;
    for (int64_t s = t0; s < t1; s++) {
        const int64_t tok = token(a, route_row, s);
        if (tok >= 0) *lo = min64(*lo, tok), *hi = max64(*hi, tok);
    }
}

/* Software prefetch of the rows the next (block, chunk) will read and write, spread over the current one's steps:
 * rows row0 .. row0 + lanes - 1, tokens lo .. hi, one 64-byte line at a time. prefetch_step must be inlined: as a
 * function of its own GCC finds it free of side effects and deletes the calls. */
typedef struct {
    int64_t row0, u_shift, lo, per_row, total; /* u_shift: offset of u's rows relative to the others */
} Prefetch;

static Prefetch prefetch_plan(const Block *k, int64_t lo, int64_t hi) {
    Prefetch f = {.row0 = k->row0, .u_shift = k->urow0 - k->row0, .lo = lo, .per_row = 0, .total = 0};
    if (hi >= lo) {
        f.per_row = (hi - lo) / LINE_FLOATS + 2; /* one extra line: the range need not start on a line */
        f.total = f.per_row * k->lanes;
    }
    return f;
}

__attribute__((always_inline)) static inline void prefetch_step(const ScanArgs *a, const Prefetch *f, int64_t hi, int64_t t, int64_t tn,
                                 int backward) {
    const int64_t q1 = (t + 1) * f->total / tn;
    for (int64_t q = t * f->total / tn; q < q1; q++) {
        const int64_t off = f->row0 + q / f->per_row * a->length + min64(f->lo + q % f->per_row * LINE_FLOATS, hi);
        __builtin_prefetch(a->delta + off, 0, 3);
        __builtin_prefetch(a->u + f->u_shift + off, 0, 3);
        if (a->z) __builtin_prefetch(a->z + off, 0, 3);
        if (backward) {
            __builtin_prefetch(a->grad_out + off, 0, 3);
            __builtin_prefetch(a->du + off, 1, 3);
            __builtin_prefetch(a->ddelta + off, 1, 3);
            if (a->z) __builtin_prefetch(a->dz + off, 1, 3);
        } else {
            __builtin_prefetch(a->out + off, 1, 3);
        }
    }
}

/* Per-thread buffers for one chunk. Shared by the blocks of a part: tokens, B and C (T x N, zero at padding).
 * Per block, one vector per step: x = delta + bias, dt = softplus(x) (or x), dtu = dt * u, u, z, g (incoming
 * gradient), y. */
typedef struct {
    int64_t *tok, *safe; /* safe: padding replaced by token 0, a valid address */
    int64_t lo, hi, tn, has_padding;
    float *Bc, *Cc;
    vf *x, *dt, *dtu, *u, *z, *g, *y;
} Chunk;

static int alloc_chunk(Chunk *c, int64_t T, int64_t N) {
    memset(c, 0, sizeof(*c));
    vf *v = alloc(sizeof(vf) * 7 * (size_t)T);
    float *s = alloc(sizeof(float) * 2 * (size_t)(T * N));
    int64_t *tok = alloc(sizeof(int64_t) * 2 * (size_t)T);
    if (!v || !s || !tok) {
        free(v);
        free(s);
        free(tok);
        return -1;
    }
    c->x = v, c->dt = v + T, c->dtu = v + 2 * T, c->u = v + 3 * T, c->z = v + 4 * T, c->g = v + 5 * T;
    c->y = v + 6 * T;
    c->Bc = s, c->Cc = s + T * N;
    c->tok = tok, c->safe = tok + T;
    return 0;
}

static void free_chunk(Chunk *c) {
    free(c->x);
    free(c->Bc);
    free(c->tok);
}

/* Tokens of chunk ci of the part and its B, C at those tokens (step-major: Bc[t * N + n]). */
static void load_part_chunk(const ScanArgs *a, const Part *p, int64_t ci, Chunk *c) {
    const int64_t L = a->length, N = a->state, t0 = ci * a->chunk, tn = min64(a->chunk, a->steps - t0);
    c->tn = tn;
    c->has_padding = 0;
    for (int64_t t = 0; t < tn; t++) {
        const int64_t tok = token(a, p->route_row, t0 + t);
        c->tok[t] = tok;
        c->safe[t] = tok >= 0 ? tok : 0;
        c->has_padding |= tok < 0;
    }
    token_range(a, p->route_row, ci, &c->lo, &c->hi);
    const float *Bg = a->B + (p->b * a->groups + p->group) * N * L;
    const float *Cg = a->C + (p->b * a->groups + p->group) * N * L;
    for (int64_t n = 0; n < N; n++) {
        const float *Bn = Bg + n * L, *Cn = Cg + n * L;
        for (int64_t t = 0; t < tn; t++) {
            c->Bc[t * N + n] = Bn[c->safe[t]];
            c->Cc[t * N + n] = Cn[c->safe[t]];
        }
    }
    if (c->has_padding)
        for (int64_t t = 0; t < tn; t++)
            if (c->tok[t] < 0)
                for (int64_t n = 0; n < N; n++) c->Bc[t * N + n] = c->Cc[t * N + n] = 0.0f;
}

/* dst[t] lane j = src[row0 + j L + token t] for the chunk's steps: zero at padding steps and in lanes past
 * k->lanes. Scalar loads and stores into a plain buffer: assembling a vector lane by lane in registers was slower
 * (store-forwarding stalls when the vector is read back). */
static void gather_steps(const ScanArgs *a, const Block *k, int64_t row0, const Chunk *c, const float *src,
                         vf *dst) {
    const int64_t L = a->length, tn = c->tn;
    float *d = (float *)dst;
    for (int64_t j = 0; j < k->lanes; j++) {
        const float *row = src + row0 + j * L;
        for (int64_t t = 0; t < tn; t++) d[t * LANES + j] = row[c->safe[t]];
    }
    for (int64_t j = k->lanes; j < LANES; j++)
        for (int64_t t = 0; t < tn; t++) d[t * LANES + j] = 0.0f;
    if (c->has_padding)
        for (int64_t t = 0; t < tn; t++)
            if (c->tok[t] < 0) dst[t] = splat(0.0f);
}

/* dst[row j, token t] = src[t] lane j for the chunk's non-padding steps and the block's lanes. */
static void scatter_steps(const ScanArgs *a, const Block *k, const Chunk *c, const vf *src, float *dst) {
    const int64_t L = a->length, tn = c->tn;
    const float *s = (const float *)src;
    for (int64_t j = 0; j < k->lanes; j++) {
        float *row = dst + k->row0 + j * L;
        if (c->has_padding) {
            for (int64_t t = 0; t < tn; t++)
                if (c->tok[t] >= 0) row[c->tok[t]] = s[t * LANES + j];
        } else {
            for (int64_t t = 0; t < tn; t++) row[c->tok[t]] = s[t * LANES + j];
        }
    }
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
        const int64_t d = k->d0 + j;
        for (int64_t n = 0; n < N; n++) p->A[n][j] = a->A[d * N + n];
        if (a->delta_bias) p->bias[j] = a->delta_bias[d];
        if (a->D) p->D[j] = a->D[d];
    }
    for (int64_t n = 0; n < N; n++) p->A2[n] = p->A[n] * 1.44269504088896341f;
}

/* A block's inputs for the chunk: x, dt, dtu, u, z (and g for the backward). */
static void load_block(const ScanArgs *a, const Block *k, const Params *p, Chunk *c, int backward) {
    gather_steps(a, k, k->row0, c, a->delta, c->x);
    gather_steps(a, k, k->urow0, c, a->u, c->u);
    if (a->z) gather_steps(a, k, k->row0, c, a->z, c->z);
    if (backward) gather_steps(a, k, k->row0, c, a->grad_out, c->g);
    for (int64_t t = 0; t < c->tn; t++) {
        const vf x = c->x[t] + p->bias;
        c->x[t] = x;
        c->dt[t] = a->delta_softplus ? vsoftplus(x) : x;
        c->dtu[t] = c->dt[t] * c->u[t];
    }
}

/* The (block, chunk) after block i of chunk ci in a walk over items [item, end) that visits a part's chunks in
 * order `dir` (+1 forward, -1 backward) and its blocks in order within each chunk. Returns 0 at the end. */
static int next_unit(const ScanArgs *a, int64_t item, int64_t end, const Part *p, int64_t ci, int64_t i, int dir,
                     const Chunk *c, Block *k, int64_t *lo, int64_t *hi) {
    if (i + 1 < p->nblk) {
        *k = block_of(a, p, i + 1);
        *lo = c->lo, *hi = c->hi;
        return 1;
    }
    const int64_t last = dir > 0 ? n_chunks(a) - 1 : 0;
    if (ci != last) {
        *k = block_of(a, p, 0);
        token_range(a, p->route_row, ci + dir, lo, hi);
        return 1;
    }
    if (item + 1 >= end) return 0;
    const Part q = part_of(a, item + 1);
    *k = block_of(a, &q, 0);
    token_range(a, q.route_row, dir > 0 ? 0 : n_chunks(a) - 1, lo, hi);
    return 1;
}

/* Forward for items [begin, end). Returns 0, or -1 if out of memory. */
int scan_forward(const ScanArgs *a, int64_t begin, int64_t end) {
    const int64_t N = a->state, T = a->chunk, n_chunk = n_chunks(a), per_part = a->blocks_per_part;
    /* per block: A, A2, h (N each) */
    vf *mem = alloc(sizeof(vf) * (size_t)(3 * N * per_part));
    Params *ps = alloc(sizeof(Params) * (size_t)per_part);
    Chunk c;
    if (!mem || !ps || alloc_chunk(&c, T, N)) {
        free(mem);
        free(ps);
        return -1;
    }
    Block ks[per_part];
    for (int64_t item = begin; item < end; item++) {
        const Part part = part_of(a, item);
        for (int64_t i = 0; i < part.nblk; i++) {
            ks[i] = block_of(a, &part, i);
            ps[i].A = mem + 3 * N * i, ps[i].A2 = ps[i].A + N;
            load_params(a, &ks[i], &ps[i]);
            vf *h = ps[i].A2 + N;
            for (int64_t n = 0; n < N; n++) h[n] = splat(0.0f);
        }
        for (int64_t ci = 0; ci < n_chunk; ci++) {
            load_part_chunk(a, &part, ci, &c);
            const int64_t tn = c.tn;
            for (int64_t i = 0; i < part.nblk; i++) {
                const Block *k = &ks[i];
                const Params *p = &ps[i];
                vf *h = ps[i].A2 + N;
                if (ci > 0 && a->chunk_states)
                    for (int64_t j = 0; j < k->lanes; j++) {
                        float *dst = a->chunk_states + chunk_state_index(a, part.b, k->d0 + j, ci);
                        for (int64_t n = 0; n < N; n++) dst[n] = h[n][j];
                    }
                Block next;
                int64_t lo = 0, hi = -1;
                Prefetch f = {0};
                if (next_unit(a, item, end, &part, ci, i, +1, &c, &next, &lo, &hi))
                    f = prefetch_plan(&next, lo, hi);
                load_block(a, k, p, &c, 0);
                for (int64_t t = 0; t < tn; t++) {
                    prefetch_step(a, &f, hi, t, tn, 0);
                    const vf dt = c.dt[t], dtu = c.dtu[t];
                    const float *Bt = c.Bc + t * N, *Ct = c.Cc + t * N;
                    vf y0 = {0}, y1 = {0}; /* two accumulators halve the add chain over n */
                    int64_t n = 0;
                    for (; n + 1 < N; n += 2) {
                        h[n] = vexp2(dt * p->A2[n]) * h[n] + dtu * Bt[n];
                        h[n + 1] = vexp2(dt * p->A2[n + 1]) * h[n + 1] + dtu * Bt[n + 1];
                        y0 += Ct[n] * h[n];
                        y1 += Ct[n + 1] * h[n + 1];
                    }
                    if (n < N) {
                        h[n] = vexp2(dt * p->A2[n]) * h[n] + dtu * Bt[n];
                        y0 += Ct[n] * h[n];
                    }
                    c.y[t] = y0 + y1 + p->D * c.u[t];
                }
                if (a->z)
                    for (int64_t t = 0; t < tn; t++) c.y[t] *= c.z[t] * vsigmoid(c.z[t]);
                scatter_steps(a, k, &c, c.y, a->out);
            }
        }
        if (a->last_state)
            for (int64_t i = 0; i < part.nblk; i++) {
                const vf *h = ps[i].A2 + N;
                for (int64_t j = 0; j < ks[i].lanes; j++)
                    for (int64_t n = 0; n < N; n++)
                        a->last_state[(part.b * a->channels + ks[i].d0 + j) * N + n] = h[n][j];
            }
    }
    free(mem);
    free(ps);
    free_chunk(&c);
    return 0;
}

/* Running sums of one block across the chunks of the backward. */
typedef struct {
    vf *carry; /* decay[t+1] * lambda[t+1] per n, the reverse-scan state */
    vf *dA;    /* per n */
    vf dD, dbias;
} BlockGrad;

/* Backward of one block over the current chunk: recompute states and decays, reverse scan, write du/ddelta/dz,
 * add the block's dB/dC terms lane-wise into dBl/dCl (T x N vectors). */
static void backward_chunk(const ScanArgs *a, const Part *part, const Block *k, const Params *p, int64_t ci,
                           Chunk *c, const Prefetch *f, int64_t pf_hi, vf *h, vf *dec, vf *prevs, vf *dBl, vf *dCl,
                           vf *dy, vf *sB, vf *sD, BlockGrad *bg) {
    const int64_t N = a->state, tn = c->tn;
    for (int64_t n = 0; n < N; n++) h[n] = splat(0.0f);
    if (ci > 0)
        for (int64_t j = 0; j < k->lanes; j++) {
            const float *src = a->chunk_states + chunk_state_index(a, part->b, k->d0 + j, ci);
            for (int64_t n = 0; n < N; n++) h[n][j] = src[n];
        }
    load_block(a, k, p, c, 1);

    /* recompute: decays and decay * previous state of every step, and dy (gate backward needs the pre-gate output y).
     * The reverse scan gets the state back as prev + delta u B. Keeping the state instead and taking prev as
     * state - delta u B gave inf - inf = NaN in ddelta where delta u B is infinite and the reference's is finite. */
    for (int64_t t = 0; t < tn; t++) {
        prefetch_step(a, f, pf_hi, t, tn, 1);
        const vf dt = c->dt[t], dtu = c->dtu[t];
        const float *Bt = c->Bc + t * N, *Ct = c->Cc + t * N;
        vf *dect = dec + t * N, *prevt = prevs + t * N;
        vf y0 = {0}, y1 = {0};
        int64_t n = 0;
        for (; n + 1 < N; n += 2) {
            const vf e0 = vexp2(dt * p->A2[n]), e1 = vexp2(dt * p->A2[n + 1]);
            const vf prev0 = e0 * h[n], prev1 = e1 * h[n + 1];
            h[n] = prev0 + dtu * Bt[n];
            h[n + 1] = prev1 + dtu * Bt[n + 1];
            dect[n] = e0, dect[n + 1] = e1;
            prevt[n] = prev0, prevt[n + 1] = prev1;
            y0 += Ct[n] * h[n];
            y1 += Ct[n + 1] * h[n + 1];
        }
        if (n < N) {
            const vf e0 = vexp2(dt * p->A2[n]), prev0 = e0 * h[n];
            h[n] = prev0 + dtu * Bt[n];
            dect[n] = e0, prevt[n] = prev0;
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
        const float *Bt = c->Bc + t * N, *Ct = c->Cc + t * N;
        const vf *dect = dec + t * N, *prevt = prevs + t * N;
        vf *dBt = dBl + t * N, *dCt = dCl + t * N;
        vf sumB = {0}, sumD = {0};
        for (int64_t n = 0; n < N; n++) {
            const vf lam = dyt * Ct[n] + bg->carry[n];
            const vf prev = prevt[n], state = prev + dtu * Bt[n];
            sumB += lam * Bt[n];
            sumD += lam * p->A[n] * prev;
            bg->dA[n] += lam * dt * prev;
            bg->carry[n] = dect[n] * lam;
            dBt[n] += lam * dtu;
            dCt[n] += dyt * state;
        }
        sB[t] = sumB;
        sD[t] = sumD;
    }

    for (int64_t t = 0; t < tn; t++) {
        const vf dDelta = sD[t] + c->u[t] * sB[t];
        const vf x = c->x[t];
        const vf dd = a->delta_softplus ? vsel(x > 20.0f, dDelta, dDelta * vsigmoid(x)) : dDelta; /* NaN x: NaN */
        bg->dbias += dd; /* padding steps too: their decay depends on the bias */
        c->x[t] = dd;                          /* x slot now holds ddelta */
        c->u[t] = c->dt[t] * sB[t] + p->D * dy[t]; /* u slot now holds du */
    }
    scatter_steps(a, k, c, c->u, a->du);
    scatter_steps(a, k, c, c->x, a->ddelta);
    if (a->z) scatter_steps(a, k, c, c->z, a->dz);
}

/* Backward for items [begin, end); item = (b, part). Writes du, ddelta, dz at token positions; per-(b, channel)
 * partials dA (batch, KD, N), dD and ddelta_bias (batch, KD); per-(b, part) partials dB, dC (batch, parts, N, L). */
int scan_backward(const ScanArgs *a, int64_t begin, int64_t end) {
    const int64_t N = a->state, T = a->chunk, L = a->length, n_chunk = n_chunks(a);
    const int64_t per_part = a->blocks_per_part, parts_per_seg = parts_per_segment(a);
    const size_t TN = (size_t)(T * N);
    /* per block: A, A2, carry, dA (N each); shared: h (N), dec, prevs, dBl, dCl (T*N each), dy, sB, sD (T each) */
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
    vf *h = mem + 4 * per_part * N, *dec = h + N, *prevs = dec + TN, *dBl = prevs + TN, *dCl = dBl + TN;
    vf *dy = dCl + TN, *sB = dy + T, *sD = sB + T;
    for (int64_t i = 0; i < per_part; i++) {
        ps[i].A = mem + 4 * i * N;
        ps[i].A2 = ps[i].A + N;
        bgs[i].carry = ps[i].A2 + N;
        bgs[i].dA = bgs[i].carry + N;
    }
    Block ks[per_part];
    for (int64_t item = begin; item < end; item++) {
        const Part part = part_of(a, item);
        float *dBp = a->dB + (part.b * a->segments * parts_per_seg + part.index) * N * L;
        float *dCp = a->dC + (part.b * a->segments * parts_per_seg + part.index) * N * L;
        for (int64_t i = 0; i < part.nblk; i++) {
            ks[i] = block_of(a, &part, i);
            load_params(a, &ks[i], &ps[i]);
            for (int64_t n = 0; n < N; n++) bgs[i].carry[n] = bgs[i].dA[n] = splat(0.0f);
            bgs[i].dD = bgs[i].dbias = splat(0.0f);
        }
        for (int64_t ci = n_chunk - 1; ci >= 0; ci--) {
            load_part_chunk(a, &part, ci, &c);
            const int64_t tn = c.tn;
            for (size_t i = 0; i < (size_t)tn * N; i++) dBl[i] = dCl[i] = splat(0.0f);
            for (int64_t i = 0; i < part.nblk; i++) {
                Block next;
                int64_t lo = 0, hi = -1;
                Prefetch f = {0};
                if (next_unit(a, item, end, &part, ci, i, -1, &c, &next, &lo, &hi))
                    f = prefetch_plan(&next, lo, hi);
                backward_chunk(a, &part, &ks[i], &ps[i], ci, &c, &f, hi, h, dec, prevs, dBl, dCl, dy, sB, sD, &bgs[i]);
            }
            for (int64_t t = 0; t < tn; t++) {
                if (c.tok[t] < 0) continue;
                for (int64_t n = 0; n < N; n++) {
                    dBp[n * L + c.tok[t]] = hsum(dBl[t * N + n]);
                    dCp[n * L + c.tok[t]] = hsum(dCl[t * N + n]);
                }
            }
        }
        for (int64_t i = 0; i < part.nblk; i++) {
            for (int64_t j = 0; j < ks[i].lanes; j++) {
                const int64_t d = ks[i].d0 + j;
                for (int64_t n = 0; n < N; n++) a->dA[(part.b * a->channels + d) * N + n] = bgs[i].dA[n][j];
                a->dD[part.b * a->channels + d] = bgs[i].dD[j];
                a->ddelta_bias[part.b * a->channels + d] = bgs[i].dbias[j];
            }
        }
    }
    free(mem);
    free(bgs);
    free(ps);
    free_chunk(&c);
    return 0;
}

#ifdef _OPENMP
/* `threads` equal item ranges of [0, items) on the OpenMP team. Linked against the libgomp torch has loaded, the team
 * is torch's own intra-op threads: a scan right after a GEMM finds them still spinning and puts them to work, where
 * threads of another pool would compete with them for the cores (Vim-S shape with z, 2 cores: after a GEMM 17.4 ms
 * per scan on a separate pool, 12.5 ms on the team; 12.0 ms alone). Returns 0, or -1 if some range ran out of
 * memory. */
static int run_on_team(int (*range)(const ScanArgs *, int64_t, int64_t), const ScanArgs *a, int64_t items,
                       int64_t threads) {
    int failed = 0;
#pragma omp parallel for num_threads((int)threads) schedule(static, 1) reduction(| : failed)
    for (int64_t i = 0; i < threads; i++) failed |= range(a, items * i / threads, items * (i + 1) / threads) != 0;
    return failed ? -1 : 0;
}

int scan_forward_parallel(const ScanArgs *a, int64_t items, int64_t threads) {
    return run_on_team(scan_forward, a, items, threads);
}

int scan_backward_parallel(const ScanArgs *a, int64_t items, int64_t threads) {
    return run_on_team(scan_backward, a, items, threads);
}
#endif

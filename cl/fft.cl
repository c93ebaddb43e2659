// FFT correlation of float32 planes (clconv/algorithms/fft.py drives it).
//
// Data: batches of complex planes, each a real and an imaginary float plane
// ([b][re|im][rows][pitch], pitch a multiple of 16); every kernel handles
// FFT_VW adjacent columns (or rows) per work-item. The output is
// cut into tiles; two tiles' border-extended inputs travel as the real and
// imaginary parts of one complex plane (correlation with a real kernel keeps
// the parts apart), zero-padded to an FFT size of 2^a 3^b 5^c.
//
// Two shapes of the same algorithm, picked by the host per device (FFT_COLUMNS):
//
// * FFT_COLUMNS (PoCL's CPU device): 16 adjacent columns (a float16 of lanes)
//   per work-item, one work-item per group. An FFT along the rows of a layout
//   (its non-contiguous axis) is a sequence of Stockham passes, out of place,
//   each loading R rows into private memory and taking their DFT there by
//   sub-passes of radix 2..9; a pass may hold a whole column (R up to
//   FFT_RMAX, L2-resident), so one pass usually does. Along x, fft_rows holds
//   16 whole rows (lanes = rows, via 16x16 register transposes) and does
//   forward FFT, spectrum product and the second FFT in one trip through
//   memory; longer rows go through the transposing path below.
// * Otherwise (GPUs, simulators, other CPU implementations): one column per
//   work-item, work-groups of adjacent columns (coalesced), one radix-R
//   (2..9) DFT per pass with every private index known at compile time:
//   dynamically indexed private arrays spill on a GPU, and Mesa's compiler
//   turns them into if-ladders (it never finished building the other shape).
//   Along x: a transpose through local memory (layout B = [x][y]), passes
//   along x with the spectrum product fused into the last, passes again, and
//   a transpose back.
//
// The inverse transform is the forward one applied to conj(Z*K) (the host
// folds 1/N into the spectrum K), so only forward passes exist. The pass
// variants fuse the neighbouring steps: the first reads the border-extended
// input straight from the source planes, the last inverse one writes output
// pixels, and the last one along x may multiply by the spectrum.

#ifdef FFT_COLUMNS
typedef float16 fvec;
#define FFT_VW 16
#ifndef FFT_RMAX  // private values per pass: a build define (clconv.constants.PROGRAM_DEFINES)
#error "FFT_RMAX is a build define: build through clconv.runtime"
#endif
#define FFT_LOAD(p) vload16(0, (p))
#define FFT_STORE(v, p) vstore16((v), 0, (p))
#else
typedef float fvec;
#define FFT_VW 1
#define FFT_LOAD(p) (*(p))
#define FFT_STORE(v, p) (*(p) = (v))
#endif

// The butterflies work on private arrays: only once inlined do they stay in registers.
#ifdef __clang__
#define FFT_INLINE inline __attribute__((always_inline))
#define FFT_UNROLL _Pragma("unroll")
#else
#define FFT_INLINE inline
#define FFT_UNROLL
#endif

// BODY(S) for the radix S (2, 3, 4, 5, 6, 8 or 9), each case with S a compile-time constant.
#define FFT_BY_RADIX(S, BODY)                                                              \
    switch (S) {                                                                           \
    case 2: BODY(2) break;                                                                 \
    case 3: BODY(3) break;                                                                 \
    case 4: BODY(4) break;                                                                 \
    case 5: BODY(5) break;                                                                 \
    case 6: BODY(6) break;                                                                 \
    case 8: BODY(8) break;                                                                 \
    default: BODY(9) break;                                                                \
    }

// ---------------------------------------------------------------- butterflies
// Forward DFTs, exp(-2 pi i n k / R), in place on private arrays of FFT_VW lanes.

FFT_INLINE void fft_dft2(fvec *re, fvec *im)
{
    fvec tr = re[0] - re[1], ti = im[0] - im[1];
    re[0] += re[1];
    im[0] += im[1];
    re[1] = tr;
    im[1] = ti;
}

FFT_INLINE void fft_dft4(fvec *re, fvec *im)
{
    fvec t0r = re[0] + re[2], t0i = im[0] + im[2];
    fvec t1r = re[0] - re[2], t1i = im[0] - im[2];
    fvec t2r = re[1] + re[3], t2i = im[1] + im[3];
    fvec t3r = im[1] - im[3], t3i = re[3] - re[1];  // (x1 - x3) * -i
    re[0] = t0r + t2r; im[0] = t0i + t2i;
    re[2] = t0r - t2r; im[2] = t0i - t2i;
    re[1] = t1r + t3r; im[1] = t1i + t3i;
    re[3] = t1r - t3r; im[3] = t1i - t3i;
}

FFT_INLINE void fft_dft3(fvec *re, fvec *im)
{
    const float s = 0.86602540378443864676f;  // sin(2 pi / 3)
    fvec t1r = re[1] + re[2], t1i = im[1] + im[2];
    fvec t2r = re[0] - 0.5f * t1r, t2i = im[0] - 0.5f * t1i;
    fvec t3r = s * (im[1] - im[2]), t3i = s * (re[2] - re[1]);  // (x1 - x2) * -i s
    re[0] += t1r; im[0] += t1i;
    re[1] = t2r + t3r; im[1] = t2i + t3i;
    re[2] = t2r - t3r; im[2] = t2i - t3i;
}

FFT_INLINE void fft_dft5(fvec *re, fvec *im)
{
    const float c1 = 0.30901699437494742410f, c2 = -0.80901699437494742410f;  // cos(2pi/5), cos(4pi/5)
    const float s1 = 0.95105651629515357212f, s2 = 0.58778525229247312917f;   // sin(2pi/5), sin(4pi/5)
    fvec a1r = re[1] + re[4], a1i = im[1] + im[4], b1r = re[1] - re[4], b1i = im[1] - im[4];
    fvec a2r = re[2] + re[3], a2i = im[2] + im[3], b2r = re[2] - re[3], b2i = im[2] - im[3];
    fvec x0r = re[0], x0i = im[0];
    fvec p1r = x0r + c1 * a1r + c2 * a2r, p1i = x0i + c1 * a1i + c2 * a2i;
    fvec p2r = x0r + c2 * a1r + c1 * a2r, p2i = x0i + c2 * a1i + c1 * a2i;
    fvec q1r = s1 * b1r + s2 * b2r, q1i = s1 * b1i + s2 * b2i;  // y1, y4 = p1 -/+ i q1
    fvec q2r = s2 * b1r - s1 * b2r, q2i = s2 * b1i - s1 * b2i;  // y2, y3 = p2 -/+ i q2
    re[0] = x0r + a1r + a2r; im[0] = x0i + a1i + a2i;
    re[1] = p1r + q1i; im[1] = p1i - q1r;
    re[4] = p1r - q1i; im[4] = p1i + q1r;
    re[2] = p2r + q2i; im[2] = p2i - q2r;
    re[3] = p2r - q2i; im[3] = p2i + q2r;
}

FFT_INLINE void fft_dft8(fvec *re, fvec *im)
{
    const float h = 0.70710678118654752440f;
    fvec er[4] = {re[0], re[2], re[4], re[6]}, ei[4] = {im[0], im[2], im[4], im[6]};
    fvec odr[4] = {re[1], re[3], re[5], re[7]}, odi[4] = {im[1], im[3], im[5], im[7]};
    fft_dft4(er, ei);
    fft_dft4(odr, odi);
    fvec t;
    t = h * (odr[1] + odi[1]); odi[1] = h * (odi[1] - odr[1]); odr[1] = t;   // * (1 - i)/sqrt2
    t = odi[2]; odi[2] = -odr[2]; odr[2] = t;                                // * -i
    t = h * (odi[3] - odr[3]); odi[3] = -h * (odr[3] + odi[3]); odr[3] = t;  // * (-1 - i)/sqrt2
    FFT_UNROLL for (int k = 0; k < 4; ++k) {
        re[k] = er[k] + odr[k]; im[k] = ei[k] + odi[k];
        re[k + 4] = er[k] - odr[k]; im[k + 4] = ei[k] - odi[k];
    }
}

// Two-level DFTs of S = S1*S2 (n = j + S1*n1, k = k1 + S2*k2): DFT_S2 over
// every residue j, twiddle exp(-2 pi i j k1 / S), DFT_S1 over every k1.
#define FFT_TWO_LEVEL(S, S1, S2, INNER, OUTER, W)                                      \
    fvec yr[S], yi[S];                                                                 \
    FFT_UNROLL for (int j = 0; j < S1; ++j) {                                          \
        fvec ur[S2], ui[S2];                                                           \
        FFT_UNROLL for (int n1 = 0; n1 < S2; ++n1) {                                   \
            ur[n1] = re[j + S1 * n1];                                                  \
            ui[n1] = im[j + S1 * n1];                                                  \
        }                                                                              \
        INNER(ur, ui);                                                                 \
        FFT_UNROLL for (int k1 = 0; k1 < S2; ++k1) {                                   \
            if (j * k1) fft_twiddle(&ur[k1], &ui[k1], W[j * k1]);                      \
            yr[j * S2 + k1] = ur[k1];                                                  \
            yi[j * S2 + k1] = ui[k1];                                                  \
        }                                                                              \
    }                                                                                  \
    FFT_UNROLL for (int k1 = 0; k1 < S2; ++k1) {                                       \
        fvec ur[S1], ui[S1];                                                           \
        FFT_UNROLL for (int j = 0; j < S1; ++j) {                                      \
            ur[j] = yr[j * S2 + k1];                                                   \
            ui[j] = yi[j * S2 + k1];                                                   \
        }                                                                              \
        OUTER(ur, ui);                                                                 \
        FFT_UNROLL for (int k2 = 0; k2 < S1; ++k2) {                                   \
            re[k1 + S2 * k2] = ur[k2];                                                 \
            im[k1 + S2 * k2] = ui[k2];                                                 \
        }                                                                              \
    }

FFT_INLINE void fft_twiddle(fvec *re, fvec *im, float2 w)
{
    fvec t = *re * w.x - *im * w.y;
    *im = *re * w.y + *im * w.x;
    *re = t;
}

FFT_INLINE void fft_dft6(fvec *re, fvec *im)
{
    const float2 w[3] = {(float2)(1.0f, 0.0f), (float2)(0.5f, -0.86602540378443864676f),
                         (float2)(-0.5f, -0.86602540378443864676f)};
    FFT_TWO_LEVEL(6, 2, 3, fft_dft3, fft_dft2, w)
}

FFT_INLINE void fft_dft9(fvec *re, fvec *im)
{
    const float2 w[5] = {(float2)(1.0f, 0.0f), (float2)(0.76604444311897803520f, -0.64278760968653932632f),
                         (float2)(0.17364817766693034885f, -0.98480775301220805936f), (float2)(0.0f, 0.0f),
                         (float2)(-0.93969262078590838405f, -0.34202014332566873304f)};
    FFT_TWO_LEVEL(9, 3, 3, fft_dft3, fft_dft3, w)
}


#ifdef FFT_COLUMNS
// ---------------------------------------------------------------- sub-passes
// One Stockham sub-pass of radix S over the R values in private memory (ms =
// R/S butterflies, sp = the product of the earlier sub-radices, twiddles at tw[off]).
#define FFT_SUB_PASS(S)                                                                   \
    for (int g = 0; g < ms; g += sp) {                                                    \
        for (int kk = 0; kk < sp; ++kk) {                                                 \
            fvec xr[S], xi[S];                                                            \
            FFT_UNROLL for (int t = 0; t < S; ++t) {                                      \
                xr[t] = inr[g + kk + t * ms];                                             \
                xi[t] = ini[g + kk + t * ms];                                             \
            }                                                                             \
            if (kk)                                                                       \
                FFT_UNROLL for (int t = 1; t < S; ++t)                                    \
                    fft_twiddle(&xr[t], &xi[t], tw[off + (t - 1) * sp + kk]);             \
            fft_dft##S(xr, xi);                                                           \
            FFT_UNROLL for (int t = 0; t < S; ++t) {                                      \
                outr[g * S + kk + t * sp] = xr[t];                                        \
                outi[g * S + kk + t * sp] = xi[t];                                        \
            }                                                                             \
        }                                                                                 \
    }

// The DFT of the R values in (*re, *im), sub-radices packed 4 bits each in
// `subs` (first lowest), twiddles from tw[off]; (*re, *im) and (*tr, *ti)
// ping-pong, and on return (*re, *im) points at the result.
FFT_INLINE void fft_private_dft(fvec **re, fvec **im, fvec **tr, fvec **ti, int R, int subs,
                                __global const float2 *tw, int off)
{
    fvec *inr = *re, *ini = *im, *outr = *tr, *outi = *ti;
    for (int sp = 1; subs; subs >>= 4) {
        // % 16, not & 15: optimised, `switch (subs & 15)` becomes a switch on an i4, which
        // Oclgrind 21.10 does not truncate (benchmarks/repro/oclgrind_switch_i4.py)
        const int S = subs % 16, ms = R / S;
        FFT_BY_RADIX(S, FFT_SUB_PASS)
        off += (S - 1) * sp;
        sp *= S;
        fvec *xr = inr, *xi = ini;
        inr = outr; ini = outi;
        outr = xr; outi = xi;
    }
    *re = inr; *im = ini; *tr = outr; *ti = outi;
}
#endif

// ---------------------------------------------------------------- tiles
// Tile t of a correlation: plane c, output rows [row0, row0 + rows), output
// columns [col0, col0 + cols); tiles_y x tiles_x tiles of q x qw per plane
// (fewer rows and columns in the last ones; none at all past `total`).
typedef struct {
    int c, row0, rows, col0, cols;
} fft_tile;

inline fft_tile fft_tile_at(int t, int total, int tiles_y, int tiles_x, int q, int qw, int out_h, int out_w)
{
    fft_tile s = {0, 0, 0, 0, 0};
    if (t < total) {
        const int per_plane = tiles_y * tiles_x, j = (t % per_plane) / tiles_x, u = t % tiles_x;
        s.c = t / per_plane;
        s.row0 = j * q;
        s.rows = min(q, out_h - s.row0);
        s.col0 = u * qw;
        s.cols = min(qw, out_w - s.col0);
    }
    return s;
}

// A tile's border-extended input: row y, columns x0..x0+15 is source row
// row0*stride + y - off_y, columns col0*stride + x - off_x, through the
// border rule; zero beyond the ext_h x ext_w pixels the windows read.
typedef struct {
    __global const float *plane;
    int ext_h, ext_w, y0, sx, inside;  // inside: all 16 columns are source columns
} fft_source;

inline fft_source fft_source_at(__global const float *src, fft_tile s, int x0, int h, int w, int stride,
                                int span_h, int span_w, int off_y, int off_x)
{
    fft_source f;
    f.plane = src + (size_t)s.c * h * w;
    const int empty = s.rows <= 0 || s.cols <= 0;
    f.ext_h = empty ? 0 : (s.rows - 1) * stride + span_h;
    f.ext_w = empty ? 0 : (s.cols - 1) * stride + span_w;
    f.y0 = s.row0 * stride - off_y;
    f.sx = s.col0 * stride + x0 - off_x;
    f.inside = f.sx >= 0 && f.sx + FFT_VW <= w && x0 + FFT_VW <= f.ext_w;
    if (x0 >= f.ext_w) f.ext_h = 0;
    return f;
}

// Columns or a row outside the source: pixel by pixel (a call: it is rare).
inline fvec fft_source_edge(fft_source f, int yy, int x0, int h, int w, int border, float cval)
{
    yy = map_index(yy, h, border);
    float v[FFT_VW];
    for (int l = 0; l < FFT_VW; ++l) {
        const int xx = map_index(f.sx + l, w, border);
        v[l] = x0 + l >= f.ext_w ? 0.0f : (yy < 0 || xx < 0) ? cval : f.plane[(size_t)yy * w + xx];
    }
    return FFT_LOAD(v);
}

FFT_INLINE fvec fft_source_row(fft_source f, int y, int x0, int h, int w, int border, float cval)
{
    if (y >= f.ext_h) return (fvec)0.0f;
    const int yy = f.y0 + y;
    if (f.inside && yy >= 0 && yy < h) return FFT_LOAD(f.plane + (size_t)yy * w + f.sx);
    return fft_source_edge(f, yy, x0, h, w, border, cval);
}

// Row yr of a tile's correlation, columns x0..x0+15, into the output planes:
// pixel (row0 + yr/stride, col0 + x/stride) where both divide.
inline void fft_put(__global float *dst, fft_tile s, int yr, int x0, fvec v, int out_h, int out_w,
                    int stride)
{
    if (yr % stride || yr / stride >= s.rows || x0 >= s.cols * stride) return;
    __global float *out = dst + ((size_t)s.c * out_h + s.row0 + yr / stride) * out_w + s.col0;
    if (stride == 1 && x0 + FFT_VW <= s.cols) {
        FFT_STORE(v, out + x0);
        return;
    }
    float lanes[FFT_VW];
    FFT_STORE(v, lanes);
    for (int l = 0; l < FFT_VW; ++l) {
        const int x = x0 + l;
        if (x % stride == 0 && x / stride < s.cols) out[x / stride] = lanes[l];
    }
}

// ---------------------------------------------------------------- passes
// Along the rows of a layout: n rows (the transform's length), m = n / R
// butterflies. Butterfly i reads rows i + r*m, twiddles row r by
// exp(-2 pi i r k / (p R)) with k = i mod p (tw[tw_off + (r-1)*p + k]), takes
// its DFT_R in private memory (sub-radices `subs`, twiddles from sub_off) and
// writes rows (i - k)*R + k + r*p. The passes p = 1, R1, R1*R2, ... leave the
// transform in natural order.
#define FFT_PLAIN 0
#define FFT_EXTEND 1    // the input is the border-extended source (first pass along y)
#define FFT_MULTIPLY 2  // the output is conj(z * K) (last pass along x, layout B)
#define FFT_GATHER 3    // the output is written as output pixels (last inverse pass along y)

typedef struct {
    __global const float *src;
    __global float *dst;
    __global const float *spectrum;  // MULTIPLY: K, real plane then imaginary plane
    __global const float2 *tw;
    size_t base;
    int col, i, m, k, o, p, pitch, plane, tw_off;
    int h, w, out_h, out_w, stride, border;
    float cval;
    fft_tile s0, s1;    // EXTEND, GATHER: the tiles of the real and the imaginary part
    fft_source f0, f1;  // EXTEND
} fft_ctx;

// Input value r of the butterfly, twiddled.
FFT_INLINE void fft_load(const fft_ctx *c, const int mode, int r, fvec *xr, fvec *xi)
{
    const int row = c->i + r * c->m;
    if (mode == FFT_EXTEND) {
        *xr = fft_source_row(c->f0, row, c->col, c->h, c->w, c->border, c->cval);
        *xi = fft_source_row(c->f1, row, c->col, c->h, c->w, c->border, c->cval);
    } else {
        *xr = FFT_LOAD(c->src + c->base + (size_t)row * c->pitch);
        *xi = FFT_LOAD(c->src + c->base + c->plane + (size_t)row * c->pitch);
    }
    if (c->k && r) fft_twiddle(xr, xi, c->tw[c->tw_off + (r - 1) * c->p + c->k]);
}

// Output value e of the butterfly.
FFT_INLINE void fft_store(const fft_ctx *c, const int mode, int e, fvec vr, fvec vi)
{
    const int row = c->o + e * c->p;
    if (mode == FFT_GATHER) {  // the result is conj(z): the real part, minus the imaginary part
        fft_put(c->dst, c->s0, row, c->col, vr, c->out_h, c->out_w, c->stride);
        fft_put(c->dst, c->s1, row, c->col, -vi, c->out_h, c->out_w, c->stride);
        return;
    }
    if (mode == FFT_MULTIPLY) {
        const size_t at = (size_t)row * c->pitch + c->col;
        const fvec kr = FFT_LOAD(c->spectrum + at), ki = FFT_LOAD(c->spectrum + c->plane + at);
        const fvec t = vr * kr - vi * ki;
        vi = -(vr * ki + vi * kr);
        vr = t;
    }
    FFT_STORE(vr, c->dst + c->base + (size_t)row * c->pitch);
    FFT_STORE(vi, c->dst + c->base + c->plane + (size_t)row * c->pitch);
}

#ifdef FFT_COLUMNS
FFT_INLINE void fft_pass_body(const fft_ctx *c, const int mode, int sub_off, int subs, int R)
{
    fvec ar[FFT_RMAX], ai[FFT_RMAX], br[FFT_RMAX], bi[FFT_RMAX];
    for (int r = 0; r < R; ++r) fft_load(c, mode, r, &ar[r], &ai[r]);
    fvec *re = ar, *im = ai, *tr = br, *ti = bi;
    fft_private_dft(&re, &im, &tr, &ti, R, subs, c->tw, sub_off);
    for (int r = 0; r < R; ++r) fft_store(c, mode, r, re[r], im[r]);
}
#else
// One DFT of radix R, a constant in each case: every private index is known when compiling.
#define FFT_STATIC_PASS(R)                                                    \
    {                                                                         \
        fvec xr[R], xi[R];                                                    \
        FFT_UNROLL for (int r = 0; r < R; ++r) fft_load(c, mode, r, &xr[r], &xi[r]); \
        fft_dft##R(xr, xi);                                                   \
        FFT_UNROLL for (int r = 0; r < R; ++r) fft_store(c, mode, r, xr[r], xi[r]); \
    }

FFT_INLINE void fft_pass_body(const fft_ctx *c, const int mode, int sub_off, int subs, int R)
{
    FFT_BY_RADIX(R, FFT_STATIC_PASS)
}
#endif

#define FFT_PASS_ARGS __global const float *src, __global float *dst, __global const float2 *tw, \
    int tw_off, int sub_off, int subs, int R, int n, int p, int pitch, int plane

#define FFT_PASS_SETUP                                                                         \
    const int col = get_global_id(0) * FFT_VW, i = get_global_id(1), b = get_global_id(2);    \
    const int m = n / R;                                                                       \
    if (col >= pitch || i >= m) return;                                                        \
    fft_ctx c;                                                                                 \
    c.src = src; c.dst = dst; c.tw = tw;                                                       \
    c.base = (size_t)b * 2 * plane + col;                                                      \
    c.col = col; c.i = i; c.m = m; c.k = i % p; c.o = (i - c.k) * R + c.k;                     \
    c.p = p; c.pitch = pitch; c.plane = plane; c.tw_off = tw_off;

#define FFT_TILE_ARGS int first_tile, int total, int tiles_y, int tiles_x, int q, int qw, int out_h, int out_w
#define FFT_TILES                                                                              \
    c.s0 = fft_tile_at(first_tile + 2 * b, total, tiles_y, tiles_x, q, qw, out_h, out_w);      \
    c.s1 = fft_tile_at(first_tile + 2 * b + 1, total, tiles_y, tiles_x, q, qw, out_h, out_w);

__kernel void fft_pass(FFT_PASS_ARGS)
{
    FFT_PASS_SETUP
    fft_pass_body(&c, FFT_PLAIN, sub_off, subs, R);
}

__kernel void fft_pass_multiply(FFT_PASS_ARGS, __global const float *spectrum)
{
    FFT_PASS_SETUP
    c.spectrum = spectrum;
    fft_pass_body(&c, FFT_MULTIPLY, sub_off, subs, R);
}

// Tiles first_tile + 2b (real part) and + 1 (imaginary part) of `image`.
__kernel void fft_pass_extend(FFT_PASS_ARGS, __global const float *image, long image_off, int h, int w,
                              FFT_TILE_ARGS, int stride, int span_h, int span_w, int off_y, int off_x,
                              int border, float cval)
{
    FFT_PASS_SETUP
    c.h = h; c.w = w; c.border = border; c.cval = cval;
    FFT_TILES
    c.f0 = fft_source_at(image + image_off, c.s0, col, h, w, stride, span_h, span_w, off_y, off_x);
    c.f1 = fft_source_at(image + image_off, c.s1, col, h, w, stride, span_h, span_w, off_y, off_x);
    fft_pass_body(&c, FFT_EXTEND, sub_off, subs, R);
}

// Rows of the tiles' correlations into the output pixels of `out`.
__kernel void fft_pass_gather(FFT_PASS_ARGS, __global float *out, long out_off, FFT_TILE_ARGS, int stride)
{
    FFT_PASS_SETUP
    c.dst = out + out_off;
    c.out_h = out_h; c.out_w = out_w; c.stride = stride;
    FFT_TILES
    fft_pass_body(&c, FFT_GATHER, sub_off, subs, R);
}

// ---------------------------------------------------------------- along x
#ifdef FFT_COLUMNS
#define FFT_T_COL(c) (fvec)(v[0].s##c, v[1].s##c, v[2].s##c, v[3].s##c, v[4].s##c, v[5].s##c, \
    v[6].s##c, v[7].s##c, v[8].s##c, v[9].s##c, v[10].s##c, v[11].s##c, v[12].s##c, v[13].s##c, \
    v[14].s##c, v[15].s##c)

// v[0..15] = its transpose (v[r].s[c] <-> v[c].s[r]).
FFT_INLINE void fft_transpose16(fvec *v)
{
    fvec t[FFT_VW] = {FFT_T_COL(0), FFT_T_COL(1), FFT_T_COL(2), FFT_T_COL(3), FFT_T_COL(4), FFT_T_COL(5),
                      FFT_T_COL(6), FFT_T_COL(7), FFT_T_COL(8), FFT_T_COL(9), FFT_T_COL(a), FFT_T_COL(b),
                      FFT_T_COL(c), FFT_T_COL(d), FFT_T_COL(e), FFT_T_COL(f)};
    for (int r = 0; r < FFT_VW; ++r) v[r] = t[r];
}

// 16 rows y0..y0+15 of one complex plane (layout A, pitch >= round16(n)): FFT
// along x, z = conj(z * K), FFT along x again, in place. Rows from `rows` on
// are padding (zeros in). K is [y/16][x][16 lanes], real plane then imaginary.
__kernel void fft_rows(__global float *z, __global const float2 *tw, int sub_off, int subs, int n,
                       int rows, int pitch, int plane, __global const float *spectrum, int spectrum_plane)
{
    const int y0 = get_global_id(0) * FFT_VW, b = get_global_id(2);
    if (y0 >= rows) return;
    __global float *zr = z + (size_t)b * 2 * plane + (size_t)y0 * pitch, *zi = zr + plane;
    fvec ar[FFT_RMAX], ai[FFT_RMAX], br[FFT_RMAX], bi[FFT_RMAX];
    const int nv = (n + FFT_VW - 1) / FFT_VW * FFT_VW;
    for (int x0 = 0; x0 < nv; x0 += FFT_VW) {
        fvec v[FFT_VW];
        for (int r = 0; r < FFT_VW; ++r) v[r] = y0 + r < rows ? vload16(0, zr + (size_t)r * pitch + x0) : 0.0f;
        fft_transpose16(v);
        for (int c = 0; c < FFT_VW; ++c) ar[x0 + c] = v[c];
        for (int r = 0; r < FFT_VW; ++r) v[r] = y0 + r < rows ? vload16(0, zi + (size_t)r * pitch + x0) : 0.0f;
        fft_transpose16(v);
        for (int c = 0; c < FFT_VW; ++c) ai[x0 + c] = v[c];
    }
    fvec *re = ar, *im = ai, *tr = br, *ti = bi;
    __global const float *kr = spectrum + (size_t)(y0 / FFT_VW) * n * FFT_VW, *ki = kr + spectrum_plane;
    for (int round = 0; round < 2; ++round) {
        fft_private_dft(&re, &im, &tr, &ti, n, subs, tw, sub_off);
        if (round) break;
        for (int x = 0; x < n; ++x) {
            const fvec a = re[x], c = im[x], kx = vload16(x, kr), ky = vload16(x, ki);
            re[x] = a * kx - c * ky;
            im[x] = -(a * ky + c * kx);
        }
    }
    for (int x0 = 0; x0 < nv; x0 += FFT_VW) {
        fvec v[FFT_VW];
        for (int c = 0; c < FFT_VW; ++c) v[c] = re[x0 + c];
        fft_transpose16(v);
        for (int r = 0; r < FFT_VW; ++r) vstore16(v[r], 0, zr + (size_t)r * pitch + x0);
        for (int c = 0; c < FFT_VW; ++c) v[c] = im[x0 + c];
        fft_transpose16(v);
        for (int r = 0; r < FFT_VW; ++r) vstore16(v[r], 0, zi + (size_t)r * pitch + x0);
    }
}

// src [rows][src_pitch] -> dst [cols][dst_pitch], both parts of every plane of
// the batch, one 16x16 block per work-item: dst[x][y] = src[y][x]. Source rows
// from src_rows on (padding, never written by a pass) become zeros.
__kernel void fft_transpose(__global const float *src, __global float *dst, int src_rows,
                            int src_pitch, int dst_pitch, int plane)
{
    const int x0 = get_global_id(0) * FFT_VW, y0 = get_global_id(1) * FFT_VW, b = get_global_id(2);
    if (x0 >= src_pitch || y0 >= dst_pitch) return;
    for (int part = 0; part < 2; ++part) {
        __global const float *s = src + (size_t)(2 * b + part) * plane + (size_t)y0 * src_pitch + x0;
        __global float *d = dst + (size_t)(2 * b + part) * plane + (size_t)x0 * dst_pitch + y0;
        fvec v[FFT_VW];
        for (int r = 0; r < FFT_VW; ++r)
            v[r] = y0 + r < src_rows ? vload16(0, s + (size_t)r * src_pitch) : (fvec)0.0f;
        fft_transpose16(v);
        for (int r = 0; r < FFT_VW; ++r) vstore16(v[r], 0, d + (size_t)r * dst_pitch);
    }
}
#else
// The same transpose through local memory: one 16x16 tile per work-group (any local size: its
// work-items stride over the tile), read and written along rows (coalesced on a GPU).
#define FFT_TILE 16
__kernel void fft_transpose(__global const float *src, __global float *dst, int src_rows,
                            int src_pitch, int dst_pitch, int plane)
{
    __local float tile[FFT_TILE][FFT_TILE + 1];
    const int x0 = get_group_id(0) * FFT_TILE, y0 = get_group_id(1) * FFT_TILE, b = get_global_id(2);
    const int nx = get_local_size(0), ny = get_local_size(1);
    for (int part = 0; part < 2; ++part) {
        __global const float *s = src + (size_t)(2 * b + part) * plane;
        __global float *d = dst + (size_t)(2 * b + part) * plane;
        for (int ly = get_local_id(1); ly < FFT_TILE; ly += ny)
            for (int lx = get_local_id(0); lx < FFT_TILE; lx += nx) {
                const int x = x0 + lx, y = y0 + ly;
                tile[ly][lx] = x < src_pitch && y < src_rows ? s[(size_t)y * src_pitch + x] : 0.0f;
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int ly = get_local_id(1); ly < FFT_TILE; ly += ny)
            for (int lx = get_local_id(0); lx < FFT_TILE; lx += nx) {
                const int x = x0 + ly, y = y0 + lx;  // dst row x, column y
                if (x < src_pitch && y < dst_pitch) d[(size_t)x * dst_pitch + y] = tile[lx][ly];
            }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}
#endif

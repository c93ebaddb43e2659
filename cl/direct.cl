// Direct (sliding-window) correlation of float32 images.
//
//   dst[oy][ox][c] = sum_{i,j} w[i][j] * src[oy*stride + i*dil - off_y][ox*stride + j*dil - off_x][c]
//
// Images are planes: `planes` (global id 2) planes of h x w pixels with `cs`
// channels interleaved in each (cs = 1: plain planes; cs = C: an HxWxC image
// filtered in place as rows of w*cs values whose taps lie cs apart, each
// channel's borders mapped on its own). off_y/off_x place the window: the
// anchor for "same" output, the padding for CNN geometry. Sizes are
// arguments, not defines, so one build serves every kernel size.

// One value of a row at pixel x (any x: the border rule applies), channel ch.
inline float row_px(__global const float *row, int x, int ch, int w, int cs, int border, float cval) {
    const int xx = map_index(x, w, border);
    return xx < 0 ? cval : row[xx * cs + ch];
}

__kernel void correlate(__global const float *src, long src_off,
                        __global float *dst, long dst_off,
                        __global const float *weights, int kh, int kw,
                        int h, int w, int out_h, int out_w, int cs,
                        int stride, int dil, int off_y, int off_x,
                        int border, float cval)
{
    const int e = get_global_id(0), oy = get_global_id(1), c = get_global_id(2);
    if (e >= out_w * cs || oy >= out_h) return;
    const int ox = e / cs, ch = e - ox * cs;
    __global const float *plane = src + src_off + (size_t)c * h * w * cs;
    const int y0 = oy * stride - off_y, x0 = ox * stride - off_x;
    float acc = 0.0f;
    if (y0 >= 0 && x0 >= 0 && y0 + (kh - 1) * dil < h && x0 + (kw - 1) * dil < w) {
        for (int i = 0; i < kh; ++i) {
            __global const float *row = plane + ((size_t)(y0 + i * dil) * w + x0) * cs + ch;
            __global const float *wr = weights + i * kw;
            for (int j = 0; j < kw; ++j)
                acc = fma(wr[j], row[j * dil * cs], acc);
        }
    } else {
        for (int i = 0; i < kh; ++i) {
            const int yy = map_index(y0 + i * dil, h, border);
            __global const float *wr = weights + i * kw;
            for (int j = 0; j < kw; ++j) {
                const float v = yy < 0 ? cval
                    : row_px(plane + (size_t)yy * w * cs, x0 + j * dil, ch, w, cs, border, cval);
                acc = fma(wr[j], v, acc);
            }
        }
    }
    dst[dst_off + (size_t)c * out_h * out_w * cs + (size_t)oy * out_w * cs + e] = acc;
}

// The same correlation for stride 1, in two kernels over disjoint parts of the
// output (the host splits it, see clconv/algorithms/direct.py):
// - correlate_vec*: the interior tiles, whose whole window lies inside the
//   image. VEC_W values along a row (one or two float16 vectors) and VEC_ROWS
//   rows per work-item, explicit float16 loads and stores (PoCL's own work-item
//   vectoriser does not manage this loop), scalar weights broadcast, no border
//   arithmetic at all.
// - correlate_edge*: every other output value, one per work-item, taps mapped
//   by the border rule.
// Measured on PoCL 3.1: a scalar border path inside the vector kernel, even
// one interior work-items never take, made the vector kernel 30% slower.
//
// One kernel per (input, output) sample type: 8- and 16-bit images are read
// and written as they are, converted inside the kernel, and the output mapping
// v -> scale * (|v| if use_abs) + bias (then, for integers, round half to even
// and clip to [0, maxval]) is applied on the way out, so an image is filtered
// in one pass with no conversion passes around it.
// Values per work-item by input sample type: 8- and 16-bit inputs take two
// float16 vectors per row (as many loop trips for twice the work: their
// conversions make them compute-bound); float inputs one (measured faster).
#define VEC_W_float 16
#define VEC_W_uchar 32
#define VEC_W_ushort 32
#ifndef VEC_ROWS  // a build define (clconv.constants.PROGRAM_DEFINES): `clconv tune` measures 2 and 4
#error "VEC_ROWS is a build define: build through clconv.runtime"
#endif

#define LOAD16_float(p) vload16(0, p)
#ifdef CLCONV_CPU
// On CPU devices 16 bytes move faster as one uint4 than as a uchar16 (PoCL);
// unaligned uint access is fine on x86 but not portable, so GPUs take vload16.
#define LOAD16_uchar(p) convert_float16(as_uchar16(vload4(0, (__global const uint *)(p))))
#define STORE_BYTES16(b, p) vstore4(as_uint4(b), 0, (__global uint *)(p))
#else
#define LOAD16_uchar(p) convert_float16(vload16(0, p))
#define STORE_BYTES16(b, p) vstore16(b, 0, p)
#endif
#define LOAD16_ushort(p) convert_float16(vload16(0, p))

// The output mapping, then the sample type (MAP16, ROUNDED16: common.cl).
#define STORE16_float(v, p) vstore16(v, 0, p)
#define STORE16_uchar(v, p) STORE_BYTES16(convert_uchar16(ROUNDED16(v) & 0xFFu), p)
#define STORE16_ushort(v, p) vstore16(convert_ushort16(ROUNDED16(v) & 0xFFFFu), 0, p)
#define STORE1_float(v) (v)
#define STORE1_uchar(v) ((uchar)((clamp(v, 0.0f, maxval) + 12582912.0f) - 12582912.0f))
#define STORE1_ushort(v) ((ushort)((clamp(v, 0.0f, maxval) + 12582912.0f) - 12582912.0f))

// Interior tiles (tile = VEC_W values x VEC_ROWS rows) over values xa..xb-1 and
// rows ya..yb-1 of the output, where every window lies inside the image. The
// last tile of a row (of a column) is moved back to end at xb (at yb): it
// overlaps its neighbour, and both write the same values. With dilation 1 the
// output rows slide down the kh + VEC_ROWS - 1 input rows, so each input vector
// is loaded once for all of them.
#define DEFINE_CORRELATE_VEC(NAME, S, D, VEC_W)                                                  \
__kernel void NAME(__global const S *src, long src_off, __global D *dst, long dst_off,            \
                   __global const float *weights, int kh, int kw,                                 \
                   int h, int w, int out_h, int out_w, int cs,                                    \
                   int dil, int off_y, int off_x,                                                 \
                   int use_abs, float scale, float bias, float maxval,                            \
                   int xa, int ya, int xb, int yb)                                                \
{                                                                                                 \
    const int x = xa + get_global_id(0) * VEC_W, y = ya + get_global_id(1) * VEC_ROWS;            \
    const int c = get_global_id(2);                                                               \
    if (x >= xb || y >= yb) return;                                                               \
    const int e0 = min(x, xb - VEC_W), oy0 = min(y, yb - VEC_ROWS);                               \
    const int row_len = w * cs, out_len = out_w * cs, step = dil * cs;                            \
    __global const S *first = src + src_off + (size_t)c * h * row_len                             \
                              + (size_t)(oy0 - off_y) * row_len + e0 - off_x * cs;                \
    /* row oy0 + r: values e0 .. e0 + 15 in lo[r], e0 + 16 .. e0 + 31 in hi[r] (VEC_W 32) */      \
    float16 lo[VEC_ROWS], hi[VEC_ROWS];                                                           \
    _Pragma("unroll")                                                                             \
    for (int r = 0; r < VEC_ROWS; ++r)                                                            \
        lo[r] = hi[r] = (float16)(0.0f);                                                          \
    if (dil == 1) {                                                                               \
        for (int i = 0; i < kh + VEC_ROWS - 1; ++i) {                                             \
            __global const S *row = first + (size_t)i * row_len;                                  \
            for (int j = 0; j < kw; ++j) {                                                        \
                const float16 v = LOAD16_##S(row + j * cs);                                       \
                const float16 u = VEC_W == 32 ? LOAD16_##S(row + j * cs + 16) : v;                \
                _Pragma("unroll")                                                                 \
                for (int r = 0; r < VEC_ROWS; ++r) {                                              \
                    if (i - r >= 0 && i - r < kh) {                                               \
                        const float16 wt = (float16)(weights[(i - r) * kw + j]);                  \
                        lo[r] = fma(wt, v, lo[r]);                                                \
                        if (VEC_W == 32) hi[r] = fma(wt, u, hi[r]);                               \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    } else {                                                                                      \
        for (int i = 0; i < kh; ++i) {                                                            \
            __global const float *wr = weights + i * kw;                                          \
            for (int j = 0; j < kw; ++j) {                                                        \
                const float16 wt = (float16)(wr[j]);                                              \
                _Pragma("unroll")                                                                 \
                for (int r = 0; r < VEC_ROWS; ++r) {                                              \
                    __global const S *row = first + ((size_t)i * dil + r) * row_len + j * step;   \
                    lo[r] = fma(wt, LOAD16_##S(row), lo[r]);                                      \
                    if (VEC_W == 32) hi[r] = fma(wt, LOAD16_##S(row + 16), hi[r]);                \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
    __global D *out = dst + dst_off + (size_t)c * out_h * out_len + (size_t)oy0 * out_len + e0;   \
    _Pragma("unroll")                                                                             \
    for (int r = 0; r < VEC_ROWS; ++r) {                                                          \
        STORE16_##D(MAP16(lo[r]), out + r * out_len);                                             \
        if (VEC_W == 32) STORE16_##D(MAP16(hi[r]), out + r * out_len + 16);                       \
    }                                                                                             \
}

// One output value per work-item for every value outside the interior (xa, ya,
// xb, yb as for correlate_vec; see frame_position in common.cl).
#define DEFINE_CORRELATE_EDGE(NAME, S, D)                                                        \
__kernel void NAME(__global const S *src, long src_off, __global D *dst, long dst_off,            \
                   __global const float *weights, int kh, int kw,                                 \
                   int h, int w, int out_h, int out_w, int cs,                                    \
                   int dil, int off_y, int off_x, int border, float cval,                         \
                   int use_abs, float scale, float bias, float maxval,                            \
                   int xa, int ya, int xb, int yb, long count)                                    \
{                                                                                                 \
    const long k = get_global_id(0);                                                              \
    const int c = get_global_id(2);                                                               \
    if (k >= count) return;                                                                       \
    const int row_len = w * cs, out_len = out_w * cs;                                             \
    const long p = frame_position(k, out_len, xa, ya, xb, yb);                                    \
    const int oy = p / out_len, e = p - (long)oy * out_len;                                       \
    const int ox = e / cs, ch = e - ox * cs;                                                      \
    __global const S *plane = src + src_off + (size_t)c * h * row_len;                            \
    float acc = 0.0f;                                                                             \
    for (int i = 0; i < kh; ++i) {                                                                \
        const int yy = map_index(oy - off_y + i * dil, h, border);                                \
        __global const float *wr = weights + i * kw;                                              \
        for (int j = 0; j < kw; ++j) {                                                            \
            const int xx = map_index(ox - off_x + j * dil, w, border);                            \
            const float v = (yy < 0 || xx < 0) ? cval : (float)plane[(size_t)yy * row_len + xx * cs + ch]; \
            acc = fma(wr[j], v, acc);                                                             \
        }                                                                                         \
    }                                                                                             \
    acc = scale * (use_abs ? fabs(acc) : acc) + bias;                                             \
    dst[dst_off + (size_t)c * out_h * out_len + p] = STORE1_##D(acc);                             \
}

#define DEFINE_CORRELATE_PAIR(SUFFIX, S, D)                                                      \
    DEFINE_CORRELATE_VEC(correlate_vec##SUFFIX, S, D, VEC_W_##S)                                  \
    DEFINE_CORRELATE_EDGE(correlate_edge##SUFFIX, S, D)

DEFINE_CORRELATE_PAIR(, float, float)
DEFINE_CORRELATE_PAIR(_u8_f32, uchar, float)
DEFINE_CORRELATE_PAIR(_u16_f32, ushort, float)
DEFINE_CORRELATE_PAIR(_f32_u8, float, uchar)
DEFINE_CORRELATE_PAIR(_f32_u16, float, ushort)
DEFINE_CORRELATE_PAIR(_u8_u8, uchar, uchar)
DEFINE_CORRELATE_PAIR(_u8_u16, uchar, ushort)
DEFINE_CORRELATE_PAIR(_u16_u8, ushort, uchar)
DEFINE_CORRELATE_PAIR(_u16_u16, ushort, ushort)

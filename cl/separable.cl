// Separable correlation of float32 planes: weights = outer(column, row).
// A row pass filters along x into an intermediate of (h, out_w), then a column
// pass filters along y. Borders are per axis, so this equals the 2D
// correlation; with the constant border the column pass sees, beyond the
// image, rows whose value is cval * sum(row) (the host passes that).

__kernel void row_pass(__global const float *src, long src_off,
                       __global float *dst,
                       __global const float *taps, int k,
                       int h, int w, int out_w,
                       int stride, int dil, int off, int border, float cval, long dst_off)
{
    const int ox = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (ox >= out_w || y >= h) return;
    dst += dst_off;
    __global const float *row = src + src_off + ((size_t)c * h + y) * w;
    const int x0 = ox * stride - off;
    float acc = 0.0f;
    if (x0 >= 0 && x0 + (k - 1) * dil < w) {
        for (int j = 0; j < k; ++j)
            acc = fma(taps[j], row[x0 + j * dil], acc);
    } else {
        for (int j = 0; j < k; ++j) {
            int xx = map_index(x0 + j * dil, w, border);
            acc = fma(taps[j], xx < 0 ? cval : row[xx], acc);
        }
    }
    dst[((size_t)c * h + y) * out_w + ox] = acc;
}

// A kernel of rank r runs as r terms: the row pass writes one intermediate per
// term (term_stride floats apart) and the column pass sums the r column filters,
// taps[t * k + i] for term t; cvals[t] is term t's constant row value.
__kernel void column_pass(__global const float *src,
                          __global float *dst, long dst_off,
                          __global const float *taps, int k,
                          int h, int w, int out_h,
                          int stride, int dil, int off, int border,
                          __global const float *cvals, int terms, long term_stride)
{
    const int x = get_global_id(0), oy = get_global_id(1), c = get_global_id(2);
    if (x >= w || oy >= out_h) return;
    const int y0 = oy * stride - off;
    const bool inside = y0 >= 0 && y0 + (k - 1) * dil < h;
    float acc = 0.0f;
    for (int t = 0; t < terms; ++t) {
        __global const float *plane = src + t * term_stride + (size_t)c * h * w;
        __global const float *tp = taps + t * k;
        if (inside) {
            for (int i = 0; i < k; ++i)
                acc = fma(tp[i], plane[(size_t)(y0 + i * dil) * w + x], acc);
        } else {
            for (int i = 0; i < k; ++i) {
                int yy = map_index(y0 + i * dil, h, border);
                acc = fma(tp[i], yy < 0 ? cvals[t] : plane[(size_t)yy * w + x], acc);
            }
        }
    }
    dst[dst_off + ((size_t)c * out_h + oy) * w + x] = acc;
}

// Vectorised passes for stride 1: SEP_W values along a row per work-item (two
// float16 vectors; the image's own samples in, float out for the row pass;
// float in, the output's samples out with the mapping for the column pass),
// channels interleaved cs apart as in cl/direct.cl. As there, the vector
// kernels hold no border code at all (a scalar path in them, even one never
// taken, slowed them by 30% on PoCL): border values are a separate kernel's.
#define SEP_W 32

#define SLOAD16_float(p) vload16(0, p)
#define SLOAD16_uchar(p) convert_float16(vload16(0, p))
#define SLOAD16_ushort(p) convert_float16(vload16(0, p))
// MAP16 and ROUNDED16 (the output mapping, integer rounding): common.cl.
#define SSTORE16_float(v, p) vstore16(v, 0, p)
#define SSTORE16_uchar(v, p) vstore16(convert_uchar16(ROUNDED16(v) & 0xFFu), 0, p)
#define SSTORE16_ushort(v, p) vstore16(convert_ushort16(ROUNDED16(v) & 0xFFFFu), 0, p)

// The row pass filters rows first_row .. first_row + rows - 1 of the image
// (any of them outside it: mapped by the border rule; a constant row filters to
// row_cval = cval * sum(taps)) into `rows` rows of dst: a band of rows is all a
// band of the column pass reads, so the intermediate stays small.
// row_pass_vec*: values xa..xb-1 of band rows ya..yb-1, where every tap lies
// inside the image row (the last tile of a row moved back to end at xb);
// row_pass_edge*: every other value of the band (frame_position in common.cl).
// row_taps holds every term's row filter, k taps each; `term` picks one.
#define DEFINE_ROW_PASS_VEC(NAME, S)                                                           \
__kernel void NAME(__global const S *src, long src_off, __global float *dst, long dst_off,     \
                   __global const float *row_taps, int term, int k, int h, int w, int out_w,    \
                   int cs,                                                                      \
                   int dil, int off, int border, int first_row, int rows,                       \
                   int xa, int ya, int xb, int yb)                                              \
{                                                                                               \
    __global const float *taps = row_taps + term * k; /* this term's row filter */              \
    const int x = xa + get_global_id(0) * SEP_W, t = ya + get_global_id(1);                    \
    const int c = get_global_id(2);                                                             \
    if (x >= xb || t >= yb) return;                                                             \
    const int e0 = min(x, xb - SEP_W), row_len = w * cs, out_len = out_w * cs, step = dil * cs;  \
    const int y = map_index(first_row + t, h, border);                                          \
    __global const S *row = src + src_off + ((size_t)c * h + y) * row_len + e0 - off * cs;      \
    float16 lo = (float16)(0.0f), hi = lo;                                                      \
    for (int j = 0; j < k; ++j) {                                                               \
        const float16 wt = (float16)(taps[j]);                                                  \
        lo = fma(wt, SLOAD16_##S(row + j * step), lo);                                          \
        hi = fma(wt, SLOAD16_##S(row + j * step + 16), hi);                                     \
    }                                                                                           \
    __global float *out = dst + dst_off + ((size_t)c * rows + t) * out_len + e0;                \
    vstore16(lo, 0, out);                                                                       \
    vstore16(hi, 0, out + 16);                                                                  \
}                                                                                               \
__kernel void NAME##_edge(__global const S *src, long src_off, __global float *dst,            \
                          long dst_off, __global const float *row_taps, int term, int k, int h, int w,  \
                          int out_w, int cs,                                                    \
                          int dil, int off, int border, int first_row, int rows,                \
                          int xa, int ya, int xb, int yb, float cval, float row_cval, long count) \
{                                                                                               \
    __global const float *taps = row_taps + term * k; /* this term's row filter */              \
    const long q = get_global_id(0);                                                            \
    const int c = get_global_id(2);                                                             \
    if (q >= count) return;                                                                     \
    const int row_len = w * cs, out_len = out_w * cs;                                           \
    const long p = frame_position(q, out_len, xa, ya, xb, yb);                                  \
    const int t = p / out_len, e = p - (long)t * out_len, ox = e / cs, ch = e - ox * cs;        \
    const int y = map_index(first_row + t, h, border);                                          \
    float acc = row_cval;                                                                       \
    if (y >= 0) {                                                                               \
        __global const S *row = src + src_off + ((size_t)c * h + y) * row_len;                  \
        acc = 0.0f;                                                                             \
        for (int j = 0; j < k; ++j) {                                                           \
            const int xx = map_index(ox - off + j * dil, w, border);                            \
            acc = fma(taps[j], xx < 0 ? cval : (float)row[xx * cs + ch], acc);                  \
        }                                                                                       \
    }                                                                                           \
    dst[dst_off + ((size_t)c * rows + t) * out_len + e] = acc;                                  \
}
DEFINE_ROW_PASS_VEC(row_pass_vec_f32, float)
DEFINE_ROW_PASS_VEC(row_pass_vec_u8, uchar)
DEFINE_ROW_PASS_VEC(row_pass_vec_u16, ushort)

// Two terms of a low-rank kernel in one row pass: each input vector is loaded
// (and, for 8/16-bit samples, converted) once for both; taps[0..k) are term
// `term`'s row filter, taps[k..2k) the next one's, written term_stride floats apart.
#define DEFINE_ROW_PASS_PAIR(NAME, S)                                                          \
__kernel void NAME(__global const S *src, long src_off, __global float *dst, long dst_off,     \
                   __global const float *row_taps, int term, int k, int h, int w, int out_w,    \
                   int cs,                                                                      \
                   int dil, int off, int border, int first_row, int rows,                       \
                   int xa, int ya, int xb, int yb, long term_stride)                            \
{                                                                                               \
    __global const float *taps = row_taps + term * k; /* this term's row filter */              \
    const int x = xa + get_global_id(0) * SEP_W, t = ya + get_global_id(1);                    \
    const int c = get_global_id(2);                                                             \
    if (x >= xb || t >= yb) return;                                                             \
    const int e0 = min(x, xb - SEP_W), row_len = w * cs, out_len = out_w * cs, step = dil * cs;  \
    const int y = map_index(first_row + t, h, border);                                          \
    __global const S *row = src + src_off + ((size_t)c * h + y) * row_len + e0 - off * cs;      \
    float16 lo0 = (float16)(0.0f), hi0 = lo0, lo1 = lo0, hi1 = lo0;                             \
    for (int j = 0; j < k; ++j) {                                                               \
        const float16 v = SLOAD16_##S(row + j * step), u = SLOAD16_##S(row + j * step + 16);    \
        const float16 w0 = (float16)(taps[j]), w1 = (float16)(taps[k + j]);                     \
        lo0 = fma(w0, v, lo0);                                                                  \
        hi0 = fma(w0, u, hi0);                                                                  \
        lo1 = fma(w1, v, lo1);                                                                  \
        hi1 = fma(w1, u, hi1);                                                                  \
    }                                                                                           \
    __global float *out = dst + dst_off + ((size_t)c * rows + t) * out_len + e0;                \
    vstore16(lo0, 0, out);                                                                      \
    vstore16(hi0, 0, out + 16);                                                                 \
    vstore16(lo1, 0, out + term_stride);                                                        \
    vstore16(hi1, 0, out + term_stride + 16);                                                   \
}
DEFINE_ROW_PASS_PAIR(row_pass_vec_f32_pair, float)
DEFINE_ROW_PASS_PAIR(row_pass_vec_u8_pair, uchar)
DEFINE_ROW_PASS_PAIR(row_pass_vec_u16_pair, ushort)

// The column pass reads a band the row pass made (one per term, summed):
// out_h + (k - 1) * dil rows, so no border along y. Tiles of SEP_W values by
// COL_ROWS rows (a build define, clconv.constants.PROGRAM_DEFINES: `clconv tune` measures 2 and 4); the last
// tile of a row (of a column) is moved back to end at the edge, writing the same
// values as its neighbour where they overlap, so the host needs len >= SEP_W and
// out_h >= COL_ROWS. With dilation 1 the output rows slide down the k + COL_ROWS - 1
// input rows, each vector loaded once for all of them.
#ifndef COL_ROWS
#error "COL_ROWS is a build define: build through clconv.runtime"
#endif
#define DEFINE_COLUMN_PASS_VEC(NAME, D)                                                        \
__kernel void NAME(__global const float *src, __global D *dst, long dst_off,                   \
                   __global const float *taps, int k, int h, int w, int out_h, int cs,          \
                   int dil, int use_abs, float scale, float bias, float maxval, int plane_rows, \
                   int terms, long term_stride)                                                 \
{                                                                                               \
    const int x = get_global_id(0) * SEP_W, y = get_global_id(1) * COL_ROWS;                   \
    const int c = get_global_id(2), len = w * cs;                                               \
    if (x >= len || y >= out_h) return;                                                         \
    const int e0 = min(x, len - SEP_W), oy0 = min(y, out_h - COL_ROWS);                         \
    float16 lo[COL_ROWS], hi[COL_ROWS];                                                         \
    _Pragma("unroll")                                                                           \
    for (int r = 0; r < COL_ROWS; ++r)                                                          \
        lo[r] = hi[r] = (float16)(0.0f);                                                        \
    for (int t = 0; t < terms; ++t) {                                                           \
        __global const float *first = src + t * term_stride + (size_t)c * h * len               \
                                      + (size_t)oy0 * len + e0;                                 \
        __global const float *tp = taps + t * k;                                                \
        if (dil == 1) {                                                                         \
            for (int i = 0; i < k + COL_ROWS - 1; ++i) {                                        \
                __global const float *row = first + (size_t)i * len;                            \
                const float16 v = vload16(0, row), u = vload16(0, row + 16);                    \
                _Pragma("unroll")                                                               \
                for (int r = 0; r < COL_ROWS; ++r) {                                            \
                    const int tap = i - r;                                                      \
                    if (tap >= 0 && tap < k) {                                                  \
                        const float16 wt = (float16)(tp[tap]);                                  \
                        lo[r] = fma(wt, v, lo[r]);                                              \
                        hi[r] = fma(wt, u, hi[r]);                                              \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        } else {                                                                                \
            for (int i = 0; i < k; ++i) {                                                       \
                const float16 wt = (float16)(tp[i]);                                            \
                _Pragma("unroll")                                                               \
                for (int r = 0; r < COL_ROWS; ++r) {                                            \
                    __global const float *row = first + ((size_t)i * dil + r) * len;            \
                    lo[r] = fma(wt, vload16(0, row), lo[r]);                                    \
                    hi[r] = fma(wt, vload16(0, row + 16), hi[r]);                               \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    __global D *out = dst + dst_off + (size_t)c * plane_rows * len + (size_t)oy0 * len + e0;    \
    _Pragma("unroll")                                                                           \
    for (int r = 0; r < COL_ROWS; ++r) {                                                        \
        SSTORE16_##D(MAP16(lo[r]), out + r * len);                                              \
        SSTORE16_##D(MAP16(hi[r]), out + r * len + 16);                                         \
    }                                                                                           \
}
DEFINE_COLUMN_PASS_VEC(column_pass_vec_f32, float)
DEFINE_COLUMN_PASS_VEC(column_pass_vec_u8, uchar)
DEFINE_COLUMN_PASS_VEC(column_pass_vec_u16, ushort)

// Separable correlation of float32 planes: weights = outer(column, row).
// A row pass filters along x into an intermediate of (h, out_w), then a column
// pass filters along y. Borders are per axis, so this equals the 2D
// correlation; with the constant border the column pass sees, beyond the
// image, rows whose value is cval * sum(row) (the host passes that).

__kernel void row_pass(__global const float *src, int src_off,
                       __global float *dst,
                       __global const float *taps, int k,
                       int h, int w, int out_w,
                       int stride, int dil, int off, int border, float cval)
{
    const int ox = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (ox >= out_w || y >= h) return;
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

__kernel void column_pass(__global const float *src,
                          __global float *dst, int dst_off,
                          __global const float *taps, int k,
                          int h, int w, int out_h,
                          int stride, int dil, int off, int border, float cval)
{
    const int x = get_global_id(0), oy = get_global_id(1), c = get_global_id(2);
    if (x >= w || oy >= out_h) return;
    __global const float *plane = src + (size_t)c * h * w;
    const int y0 = oy * stride - off;
    float acc = 0.0f;
    if (y0 >= 0 && y0 + (k - 1) * dil < h) {
        for (int i = 0; i < k; ++i)
            acc = fma(taps[i], plane[(size_t)(y0 + i * dil) * w + x], acc);
    } else {
        for (int i = 0; i < k; ++i) {
            int yy = map_index(y0 + i * dil, h, border);
            acc = fma(taps[i], yy < 0 ? cval : plane[(size_t)yy * w + x], acc);
        }
    }
    dst[dst_off + ((size_t)c * out_h + oy) * w + x] = acc;
}

// Vectorised passes for stride 1: 16 values along a row per work-item (the
// image's own samples in, float out for the row pass; float in, the output's
// samples out with the mapping for the column pass), channels interleaved
// cs apart as in cl/direct.cl. Interior work-items run without border
// arithmetic.
#define SEP_W 16
#define SEP_ROWS 2

#define SLOAD16_float(p) vload16(0, p)
#define SLOAD16_uchar(p) convert_float16(vload16(0, p))
#define SLOAD16_ushort(p) convert_float16(vload16(0, p))
#define SSTORE16_float(v, p) vstore16(v, 0, p)
#define SSTORE16_uchar(v, p) vstore16(convert_uchar16((clamp(v, 0.0f, maxval) + 12582912.0f) - 12582912.0f), 0, p)
#define SSTORE16_ushort(v, p) vstore16(convert_ushort16((clamp(v, 0.0f, maxval) + 12582912.0f) - 12582912.0f), 0, p)
#define SSTORE1_float(v) (v)
#define SSTORE1_uchar(v) ((uchar)((clamp(v, 0.0f, maxval) + 12582912.0f) - 12582912.0f))
#define SSTORE1_ushort(v) ((ushort)((clamp(v, 0.0f, maxval) + 12582912.0f) - 12582912.0f))

// The row pass filters rows first_row .. first_row + rows - 1 of the image
// (any of them outside it: mapped by the border rule; a constant row filters to
// row_cval = cval * sum(taps)) into `rows` rows of dst: a band of rows is all a
// band of the column pass reads, so the intermediate stays small.
#define DEFINE_ROW_PASS_VEC(NAME, S)                                                           \
__kernel void NAME(__global const S *src, int src_off, __global float *dst,                    \
                   __global const float *taps, int k, int h, int w, int out_w, int cs,          \
                   int dil, int off, int border, float cval,                                    \
                   int first_row, int rows, float row_cval)                                     \
{                                                                                               \
    const int e0 = get_global_id(0) * SEP_W, t = get_global_id(1), c = get_global_id(2);       \
    const int row_len = w * cs, out_len = out_w * cs, step = dil * cs;                          \
    if (e0 >= out_len || t >= rows) return;                                                     \
    __global float *out = dst + ((size_t)c * rows + t) * out_len;                               \
    const int y = map_index(first_row + t, h, border);                                          \
    if (y < 0) {                                                                                \
        for (int q = 0; q < SEP_W && e0 + q < out_len; ++q) out[e0 + q] = row_cval;             \
        return;                                                                                 \
    }                                                                                           \
    __global const S *row = src + src_off + ((size_t)c * h + y) * row_len;                      \
    const int x0 = e0 - off * cs;                                                               \
    if (e0 + SEP_W <= out_len && x0 >= 0 && x0 + SEP_W - 1 + (k - 1) * step < row_len) {        \
        float16 acc = (float16)(0.0f);                                                          \
        for (int j = 0; j < k; ++j)                                                             \
            acc = fma((float16)(taps[j]), SLOAD16_##S(row + x0 + j * step), acc);               \
        vstore16(acc, 0, out + e0);                                                             \
        return;                                                                                 \
    }                                                                                           \
    for (int q = 0; q < SEP_W && e0 + q < out_len; ++q) {                                       \
        const int e = e0 + q, ox = e / cs, ch = e - ox * cs;                                    \
        float acc = 0.0f;                                                                       \
        for (int j = 0; j < k; ++j) {                                                           \
            const int xx = map_index(ox - off + j * dil, w, border);                            \
            acc = fma(taps[j], xx < 0 ? cval : (float)row[xx * cs + ch], acc);                  \
        }                                                                                       \
        out[e] = acc;                                                                           \
    }                                                                                           \
}
DEFINE_ROW_PASS_VEC(row_pass_vec_f32, float)
DEFINE_ROW_PASS_VEC(row_pass_vec_u8, uchar)
DEFINE_ROW_PASS_VEC(row_pass_vec_u16, ushort)

#define DEFINE_COLUMN_PASS_VEC(NAME, D)                                                        \
__kernel void NAME(__global const float *src, __global D *dst, int dst_off,                    \
                   __global const float *taps, int k, int h, int w, int out_h, int cs,          \
                   int dil, int off, int border, float cval,                                    \
                   int use_abs, float scale, float bias, float maxval, int plane_rows)           \
{                                                                                               \
    const int e0 = get_global_id(0) * SEP_W, oy0 = get_global_id(1) * SEP_ROWS;                \
    const int c = get_global_id(2), len = w * cs;                                               \
    if (e0 >= len || oy0 >= out_h) return;                                                      \
    __global const float *plane = src + (size_t)c * h * len;                                    \
    __global D *out = dst + dst_off + (size_t)c * plane_rows * len;                             \
    const int y0 = oy0 - off;                                                                   \
    if (e0 + SEP_W <= len && oy0 + SEP_ROWS <= out_h && y0 >= 0                                 \
        && y0 + SEP_ROWS - 1 + (k - 1) * dil < h) {                                             \
        float16 acc0 = (float16)(0.0f), acc1 = (float16)(0.0f);                                 \
        for (int i = 0; i < k; ++i) {                                                           \
            __global const float *r0 = plane + (size_t)(y0 + i * dil) * len + e0;               \
            const float16 t = (float16)(taps[i]);                                               \
            acc0 = fma(t, vload16(0, r0), acc0);                                                \
            acc1 = fma(t, vload16(0, r0 + len), acc1);                                          \
        }                                                                                       \
        acc0 = (float16)(scale) * (use_abs ? fabs(acc0) : acc0) + (float16)(bias);              \
        acc1 = (float16)(scale) * (use_abs ? fabs(acc1) : acc1) + (float16)(bias);              \
        SSTORE16_##D(acc0, out + (size_t)oy0 * len + e0);                                       \
        SSTORE16_##D(acc1, out + (size_t)(oy0 + 1) * len + e0);                                 \
        return;                                                                                 \
    }                                                                                           \
    for (int r = 0; r < SEP_ROWS && oy0 + r < out_h; ++r)                                       \
        for (int q = 0; q < SEP_W && e0 + q < len; ++q) {                                       \
            float acc = 0.0f;                                                                   \
            for (int i = 0; i < k; ++i) {                                                       \
                const int yy = map_index(y0 + r + i * dil, h, border);                          \
                acc = fma(taps[i], yy < 0 ? cval : plane[(size_t)yy * len + e0 + q], acc);      \
            }                                                                                   \
            acc = scale * (use_abs ? fabs(acc) : acc) + bias;                                   \
            out[(size_t)(oy0 + r) * len + e0 + q] = SSTORE1_##D(acc);                           \
        }                                                                                       \
}
DEFINE_COLUMN_PASS_VEC(column_pass_vec_f32, float)
DEFINE_COLUMN_PASS_VEC(column_pass_vec_u8, uchar)
DEFINE_COLUMN_PASS_VEC(column_pass_vec_u16, ushort)

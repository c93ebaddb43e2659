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

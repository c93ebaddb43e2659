// Direct (sliding-window) correlation of float32 planes.
//
//   dst[c][oy][ox] = sum_{i,j} w[i][j] * src[c][oy*stride + i*dil - off_y][ox*stride + j*dil - off_x]
//
// off_y/off_x place the window: the anchor for "same" output, the padding for
// CNN geometry. Sizes are arguments, not defines, so one build serves every
// kernel size. Work-items whose window lies inside the plane take a fast path
// with no border arithmetic; only edge work-items map indices.
__kernel void correlate(__global const float *src, int src_off,
                        __global float *dst, int dst_off,
                        __global const float *weights, int kh, int kw,
                        int h, int w, int out_h, int out_w,
                        int stride, int dil, int off_y, int off_x,
                        int border, float cval)
{
    const int ox = get_global_id(0), oy = get_global_id(1), c = get_global_id(2);
    if (ox >= out_w || oy >= out_h) return;
    __global const float *plane = src + src_off + (size_t)c * h * w;
    const int y0 = oy * stride - off_y, x0 = ox * stride - off_x;
    float acc = 0.0f;
    if (y0 >= 0 && x0 >= 0 && y0 + (kh - 1) * dil < h && x0 + (kw - 1) * dil < w) {
        for (int i = 0; i < kh; ++i) {
            __global const float *row = plane + (size_t)(y0 + i * dil) * w + x0;
            __global const float *wr = weights + i * kw;
            for (int j = 0; j < kw; ++j)
                acc = fma(wr[j], row[j * dil], acc);
        }
    } else {
        for (int i = 0; i < kh; ++i) {
            int yy = map_index(y0 + i * dil, h, border);
            __global const float *wr = weights + i * kw;
            for (int j = 0; j < kw; ++j) {
                int xx = map_index(x0 + j * dil, w, border);
                float v = (yy < 0 || xx < 0) ? cval : plane[(size_t)yy * w + xx];
                acc = fma(wr[j], v, acc);
            }
        }
    }
    dst[dst_off + (size_t)c * out_h * out_w + (size_t)oy * out_w + ox] = acc;
}

// The same correlation for stride 1, VEC_W outputs along x and VEC_ROWS rows per
// work-item: explicit float16 loads and stores (PoCL's own work-item
// vectoriser does not manage this loop), scalar weights broadcast. A
// work-item whose whole window lies inside the plane runs without any border
// arithmetic; only work-items at an edge take the scalar path.
#define VEC_W 16
#define VEC_ROWS 2
__kernel void correlate_vec(__global const float *src, int src_off,
                            __global float *dst, int dst_off,
                            __global const float *weights, int kh, int kw,
                            int h, int w, int out_h, int out_w,
                            int dil, int off_y, int off_x,
                            int border, float cval)
{
    const int ox0 = get_global_id(0) * VEC_W, oy0 = get_global_id(1) * VEC_ROWS;
    const int c = get_global_id(2);
    if (ox0 >= out_w || oy0 >= out_h) return;
    __global const float *plane = src + src_off + (size_t)c * h * w;
    __global float *out = dst + dst_off + (size_t)c * out_h * out_w;
    const int x0 = ox0 - off_x, y0 = oy0 - off_y;
    if (ox0 + VEC_W <= out_w && oy0 + VEC_ROWS <= out_h && x0 >= 0 && y0 >= 0
        && x0 + VEC_W - 1 + (kw - 1) * dil < w && y0 + VEC_ROWS - 1 + (kh - 1) * dil < h) {
        float16 acc0 = (float16)(0.0f), acc1 = (float16)(0.0f);
        for (int i = 0; i < kh; ++i) {
            __global const float *row0 = plane + (size_t)(y0 + i * dil) * w + x0;
            __global const float *row1 = row0 + w;
            __global const float *wr = weights + i * kw;
            for (int j = 0; j < kw; ++j) {
                const float16 wt = (float16)(wr[j]);
                acc0 = fma(wt, vload16(0, row0 + j * dil), acc0);
                acc1 = fma(wt, vload16(0, row1 + j * dil), acc1);
            }
        }
        vstore16(acc0, 0, out + (size_t)oy0 * out_w + ox0);
        vstore16(acc1, 0, out + (size_t)(oy0 + 1) * out_w + ox0);
        return;
    }
    for (int r = 0; r < VEC_ROWS; ++r) {
        const int oy = oy0 + r;
        if (oy >= out_h) break;
        for (int q = 0; q < VEC_W; ++q) {
            const int ox = ox0 + q;
            if (ox >= out_w) break;
            float acc = 0.0f;
            for (int i = 0; i < kh; ++i) {
                const int yy = map_index(y0 + r + i * dil, h, border);
                __global const float *wr = weights + i * kw;
                for (int j = 0; j < kw; ++j) {
                    const int xx = map_index(x0 + q + j * dil, w, border);
                    const float v = (yy < 0 || xx < 0) ? cval : plane[(size_t)yy * w + xx];
                    acc = fma(wr[j], v, acc);
                }
            }
            out[(size_t)oy * out_w + ox] = acc;
        }
    }
}

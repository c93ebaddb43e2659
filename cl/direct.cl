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

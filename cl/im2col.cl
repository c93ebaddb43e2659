// im2col: unfold a band of output rows of one plane into the patch matrix B
// (taps x pixels), written straight in the GEMM's packed layout: panels of 16
// pixel columns, [pixel / 16][tap][pixel % 16], zero beyond the band.
__kernel void im2col(__global const float *src, long src_off, __global float *cols,
                     int kh, int kw, int h, int w, int out_w, int row0, int n, int n_padded,
                     int stride, int dil, int off_y, int off_x, int border, float cval)
{
    const int p = get_global_id(0), t = get_global_id(1);
    const int taps = kh * kw;
    if (p >= n_padded || t >= taps) return;
    float v = 0.0f;
    if (p < n) {
        const int oy = row0 + p / out_w, ox = p % out_w;
        const int y = oy * stride + (t / kw) * dil - off_y;
        const int x = ox * stride + (t % kw) * dil - off_x;
        v = read_px(src + src_off, y, x, h, w, border, cval);
    }
    cols[((size_t)(p / 16) * taps + t) * 16 + (p % 16)] = v;
}

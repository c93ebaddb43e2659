// A bank of up to BANK direct correlations fused in one pass (float32 in and out):
// each work-item loads its window once and feeds every kernel of the bank, so the
// input is read once however many kernels there are.
//
//   dst[f][oy][e] = sum_{i,j} weights[f][i][j] * src[oy + i*dil - off_y][e + (j*dil - off_x)*cs]
//
// Stride 1; images are rows of w*cs values, channels interleaved cs apart, each
// channel with its own borders (as correlate_vec in direct.cl). dst holds nf
// outputs of out_h x out_w*cs values one after another; weights hold BANK kernels
// of kh x kw (zeros past nf), so the loops over the bank have a constant trip
// count and the accumulators stay in registers.
#define BANK 8
#define BANK_W 16

__kernel void correlate_bank(__global const float *src, __global float *dst, long dst_off, int nf,
                             __global const float *weights, int kh, int kw,
                             int h, int w, int out_h, int out_w, int cs,
                             int dil, int off_y, int off_x, int border, float cval)
{
    const int e0 = get_global_id(0) * BANK_W, oy = get_global_id(1);
    const int row_len = w * cs, out_len = out_w * cs, step = dil * cs, taps = kh * kw;
    if (e0 >= out_len || oy >= out_h) return;
    const size_t out_plane = (size_t)out_h * out_len;
    __global float *out = dst + dst_off + (size_t)oy * out_len + e0;
    const int x0 = e0 - off_x * cs, y0 = oy - off_y;
    if (e0 + BANK_W <= out_len && x0 >= 0 && y0 >= 0
        && x0 + BANK_W - 1 + (kw - 1) * step < row_len && y0 + (kh - 1) * dil < h) {
        float16 acc[BANK];
        for (int f = 0; f < BANK; ++f)
            acc[f] = (float16)(0.0f);
        for (int i = 0; i < kh; ++i) {
            __global const float *row = src + (size_t)(y0 + i * dil) * row_len + x0;
            for (int j = 0; j < kw; ++j) {
                const float16 v = vload16(0, row + j * step);
                __global const float *wt = weights + i * kw + j;
                for (int f = 0; f < BANK; ++f)
                    acc[f] = fma((float16)(wt[f * taps]), v, acc[f]);
            }
        }
        for (int f = 0; f < BANK; ++f)
            if (f < nf)
                vstore16(acc[f], 0, out + f * out_plane);
        return;
    }
    for (int q = 0; q < BANK_W && e0 + q < out_len; ++q) {
        const int e = e0 + q, ox = e / cs, ch = e - ox * cs;
        float acc[BANK];
        for (int f = 0; f < BANK; ++f)
            acc[f] = 0.0f;
        for (int i = 0; i < kh; ++i) {
            const int yy = map_index(y0 + i * dil, h, border);
            for (int j = 0; j < kw; ++j) {
                const int xx = map_index(ox - off_x + j * dil, w, border);
                const float v = (yy < 0 || xx < 0) ? cval : src[(size_t)yy * row_len + xx * cs + ch];
                for (int f = 0; f < BANK; ++f)
                    acc[f] = fma(weights[f * taps + i * kw + j], v, acc[f]);
            }
        }
        for (int f = 0; f < BANK; ++f)
            if (f < nf)
                out[f * out_plane + q] = acc[f];
    }
}

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
#ifndef BANK  // a build define (clconv.constants.PROGRAM_DEFINES)
#error "BANK is a build define: build through clconv.runtime"
#endif
#define BANK_W 16

// Interior tiles of BANK_W values of one row over values xa..xb-1 and rows
// ya..yb-1, where every window lies inside the image (clconv/algorithms/direct.py
// split_interior); the last tile of a row is moved back to end at xb, and it
// writes the same values as its neighbour where they overlap. No border code:
// as in cl/direct.cl, a scalar path in this kernel would slow it even where
// it is never taken.
__kernel void correlate_bank(__global const float *src, __global float *dst, long dst_off, int nf,
                             __global const float *weights, int kh, int kw,
                             int h, int w, int out_h, int out_w, int cs,
                             int dil, int off_y, int off_x, int xa, int ya, int xb, int yb)
{
    const int x = xa + get_global_id(0) * BANK_W, oy = ya + get_global_id(1);
    if (x >= xb || oy >= yb) return;
    const int e0 = min(x, xb - BANK_W);
    const int row_len = w * cs, out_len = out_w * cs, step = dil * cs, taps = kh * kw;
    const size_t out_plane = (size_t)out_h * out_len;
    __global float *out = dst + dst_off + (size_t)oy * out_len + e0;
    __global const float *first = src + (size_t)(oy - off_y) * row_len + e0 - off_x * cs;
    float16 acc[BANK];
    for (int f = 0; f < BANK; ++f)
        acc[f] = (float16)(0.0f);
    for (int i = 0; i < kh; ++i) {
        __global const float *row = first + (size_t)i * dil * row_len;
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
}

// Every value of the frame around that interior, one per work-item, every kernel
// of the bank (frame_position in common.cl).
__kernel void correlate_bank_edge(__global const float *src, __global float *dst, long dst_off, int nf,
                                  __global const float *weights, int kh, int kw,
                                  int h, int w, int out_h, int out_w, int cs,
                                  int dil, int off_y, int off_x, int xa, int ya, int xb, int yb,
                                  int border, float cval, long count)
{
    const long k = get_global_id(0);
    if (k >= count) return;
    const int row_len = w * cs, out_len = out_w * cs, taps = kh * kw;
    const long p = frame_position(k, out_len, xa, ya, xb, yb);
    const int oy = p / out_len, e = p - (long)oy * out_len, ox = e / cs, ch = e - ox * cs;
    float acc[BANK];
    for (int f = 0; f < BANK; ++f)
        acc[f] = 0.0f;
    for (int i = 0; i < kh; ++i) {
        const int yy = map_index(oy - off_y + i * dil, h, border);
        for (int j = 0; j < kw; ++j) {
            const int xx = map_index(ox - off_x + j * dil, w, border);
            const float v = (yy < 0 || xx < 0) ? cval : src[(size_t)yy * row_len + xx * cs + ch];
            for (int f = 0; f < BANK; ++f)
                acc[f] = fma(weights[f * taps + i * kw + j], v, acc[f]);
        }
    }
    const size_t out_plane = (size_t)out_h * out_len;
    for (int f = 0; f < BANK; ++f)
        if (f < nf)
            dst[dst_off + f * out_plane + p] = acc[f];
}

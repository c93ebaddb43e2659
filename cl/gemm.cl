// Tiled SGEMM: C[m x n] = A[m x k] @ B[k x n], float32, for any m, n, k >= 1.
//
// A is row-major (lda = k). B comes packed as panels of 16 columns,
// bp[panel][k][16] (clconv.gemm.pack_b, or an im2col kernel writing that layout
// directly); columns past n in the last panel are zero. C is row-major with
// leading dimension n and starts c_off floats into c.
//
// Each work-item computes an 8 x 16 register block of C: 8 rows of A (scalars,
// broadcast) times one panel row of B (a float16) per step of k, into 8 float16
// accumulators. The panel is one contiguous stream, which is what makes this
// fast on CPU devices; no __local memory and no barriers (both slow on PoCL).
//
// Work-items are numbered along one dimension (the host launches them with one
// fixed local size, clconv.gemm.LOCAL). They walk the blocks band by band: a band is
// GEMM_BAND row blocks (fewer for the last band, so no work-item idles); inside
// a band the row block varies fastest, then the panel. Consecutive work-items
// therefore share one B panel, and a band's rows of A stay cached while every
// panel passes. For a short A (m <= 8 * GEMM_BAND, e.g. filters x pixels)
// this degenerates to "all row blocks of one panel, then the next panel".
#define GEMM_MR 8
#define GEMM_PANEL 16
#define GEMM_BAND 64

#define GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
// Rows past m read row m - 1 (valid memory); their results are never stored.
#define GEMM_ROW_PTR(i) __global const float *a##i = a + (size_t)min(r0 + i, m - 1) * k;
#define GEMM_ACC(i) float16 c##i = (float16)(0.0f);
#define GEMM_FMA(i) c##i = fma((float16)(a##i[kk]), bv, c##i);
#define GEMM_STORE(i)                                                          \
    if (i < rows) {                                                            \
        __global float *dst = out + (size_t)i * n;                             \
        if (cols == GEMM_PANEL) {                                              \
            vstore16(c##i, 0, dst);                                            \
        } else {                                                               \
            vstore16(c##i, 0, tail);                                           \
            for (int j = 0; j < cols; ++j) dst[j] = tail[j];                   \
        }                                                                      \
    }

__kernel void gemm_panels(__global const float *a, __global const float *bp,
                          __global float *c, long c_off, int m, int n, int k)
{
    const int row_blocks = (m + GEMM_MR - 1) / GEMM_MR;
    const int panels = (n + GEMM_PANEL - 1) / GEMM_PANEL;
    const int band = min(row_blocks, GEMM_BAND);
    const int full_items = (row_blocks / band) * band * panels;
    const int g = get_global_id(0);
    int rb, p;
    if (g < full_items) {
        const int b_i = g / (band * panels), rem = g - b_i * band * panels;
        p = rem / band;
        rb = b_i * band + rem % band;
    } else {
        const int last = row_blocks % band, rem = g - full_items;
        if (last == 0 || rem >= last * panels) return;  // padding of the launch
        p = rem / last;
        rb = row_blocks - last + rem % last;
    }

    const int r0 = rb * GEMM_MR;
    GEMM_ROWS(GEMM_ROW_PTR)
    GEMM_ROWS(GEMM_ACC)
    __global const float *b = bp + (size_t)p * k * GEMM_PANEL;
    for (int kk = 0; kk < k; ++kk) {
        const float16 bv = vload16(kk, b);
        GEMM_ROWS(GEMM_FMA)
    }

    // Stores stop at row m and column n (the panel's padding columns are dropped).
    __global float *out = c + c_off + (size_t)r0 * n + (size_t)p * GEMM_PANEL;
    const int rows = min(GEMM_MR, m - r0);
    const int cols = min(GEMM_PANEL, n - p * GEMM_PANEL);
    float tail[GEMM_PANEL];
    GEMM_ROWS(GEMM_STORE)
}

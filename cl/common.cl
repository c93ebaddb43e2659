// Shared by every clconv program: border handling, written once.
// Border codes match clconv.params.BORDER_CODES.
#define BORDER_REFLECT  0   // d c b a | a b c d | d c b a   (scipy "reflect")
#define BORDER_MIRROR   1   // d c b | a b c d | c b a       (scipy "mirror")
#define BORDER_NEAREST  2   // a a a | a b c d | d d d
#define BORDER_WRAP     3   // b c d | a b c d | a b c
#define BORDER_CONSTANT 4   // k k k | a b c d | k k k

inline int positive_mod(int i, int n) {
    int r = i % n;
    return r < 0 ? r + n : r;
}

// Maps a coordinate that may lie anywhere (also many image sizes away, as
// with kernels larger than the image) into [0, n); -1 means "the constant".
// Extensions repeat periodically, exactly as scipy.ndimage extends lines.
inline int map_index(int i, int n, int border) {
    if (i >= 0 && i < n) return i;
    switch (border) {
    case BORDER_REFLECT: {
        int p = positive_mod(i, 2 * n);
        return p < n ? p : 2 * n - 1 - p;
    }
    case BORDER_MIRROR: {
        if (n == 1) return 0;
        int p = positive_mod(i, 2 * n - 2);
        return p < n ? p : 2 * n - 2 - p;
    }
    case BORDER_NEAREST:
        return i < 0 ? 0 : n - 1;
    case BORDER_WRAP:
        return positive_mod(i, n);
    default:
        return -1;
    }
}

// One pixel of a plane, with the border rule applied.
inline float read_px(__global const float *plane, int y, int x, int h, int w,
                     int border, float cval) {
    int yy = map_index(y, h, border);
    int xx = map_index(x, w, border);
    return (yy < 0 || xx < 0) ? cval : plane[(size_t)yy * w + xx];
}

// The output mapping v -> scale * (|v| if use_abs) + bias of a vector kernel
// (its arguments scale, use_abs, bias), and the integer sample of v clamped
// to [0, maxval]: 0 <= v <= 65535 after the clamp, so adding 1.5 * 2^23 rounds
// half to even exactly (rint is slow on PoCL; clconv never builds with
// fast-math) and leaves the integer in the low 16 bits.
#define MAP16(v) ((float16)(scale) * (use_abs ? fabs(v) : (v)) + (float16)(bias))
#define ROUNDED16(v) (as_uint16(clamp(v, 0.0f, maxval) + 12582912.0f))

// Position (row-major, in values) of value k of the frame around an interior of
// values xa..xb-1 by rows ya..yb-1 (yb = 1 and the rest 0 when there is none)
// in rows of out_len values. In row-major order the frame is one run (the rows
// above and the left part of row ya), runs of out_len - (xb - xa) values (the
// right part of a row and the left part of the next), and one last run (the
// right part of row yb - 1 and the rows below): no search, and a kernel covers
// the whole frame in one launch.
inline long frame_position(long k, int out_len, int xa, int ya, int xb, int yb) {
    const long head = (long)ya * out_len + xa, gap = out_len - (xb - xa);
    const long middle = (long)(yb - ya - 1) * gap;
    if (k < head) return k;
    if (k < head + middle) return head + (xb - xa) + (k - head) / gap * out_len + (k - head) % gap;
    return (long)(yb - 1) * out_len + xb + (k - head - middle);
}

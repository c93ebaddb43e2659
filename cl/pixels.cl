// Pixel format conversion and per-pixel steps around the convolutions.
// Images arrive interleaved (HxWxC, uint8/uint16/float32) and are filtered as
// float32 planes [C][H][W] in the input's own units (0..255 for 8-bit).

#define DEFINE_UNPACK(NAME, T)                                                \
__kernel void NAME(__global const T *src, __global float *dst,                \
                   int h, int w, int channels)                                \
{                                                                             \
    const int x = get_global_id(0), y = get_global_id(1);                     \
    if (x >= w || y >= h) return;                                             \
    const size_t px = (size_t)y * w + x, plane = (size_t)h * w;               \
    for (int c = 0; c < channels; ++c)                                        \
        dst[c * plane + px] = (float)src[px * channels + c];                  \
}
DEFINE_UNPACK(unpack_u8, uchar)
DEFINE_UNPACK(unpack_u16, ushort)
DEFINE_UNPACK(unpack_f32, float)

// v -> scale * (|v| if use_abs else v) + bias on the first `mapped` channels;
// integer outputs are then rounded half to even and clipped to [0, maxval].
inline float map_value(float v, int use_abs, float scale, float bias) {
    return scale * (use_abs ? fabs(v) : v) + bias;
}

// rint() is slow on PoCL; for 0 <= v <= 65535 adding and subtracting 1.5*2^23
// rounds half to even exactly (float32 has no bits left below 1 there).
inline float round_half_even(float v) {
    return (v + 12582912.0f) - 12582912.0f;  // clconv never builds with -cl-fast-relaxed-math
}

#define DEFINE_PACK_INT(NAME, T)                                              \
__kernel void NAME(__global const float *src, __global T *dst,                \
                   int h, int w, int channels, int mapped,                    \
                   int use_abs, float scale, float bias, float maxval)        \
{                                                                             \
    const int x = get_global_id(0), y = get_global_id(1);                     \
    if (x >= w || y >= h) return;                                             \
    const size_t px = (size_t)y * w + x, plane = (size_t)h * w;               \
    for (int c = 0; c < channels; ++c) {                                      \
        float v = src[c * plane + px];                                        \
        if (c < mapped) v = map_value(v, use_abs, scale, bias);               \
        v = isnan(v) ? 0.0f : clamp(v, 0.0f, maxval);                         \
        dst[px * channels + c] = (T)round_half_even(v);                       \
    }                                                                         \
}
DEFINE_PACK_INT(pack_u8, uchar)
DEFINE_PACK_INT(pack_u16, ushort)

__kernel void pack_f32(__global const float *src, __global float *dst,
                       int h, int w, int channels, int mapped,
                       int use_abs, float scale, float bias, float maxval)
{
    const int x = get_global_id(0), y = get_global_id(1);
    if (x >= w || y >= h) return;
    const size_t px = (size_t)y * w + x, plane = (size_t)h * w;
    for (int c = 0; c < channels; ++c) {
        float v = src[c * plane + px];
        dst[px * channels + c] = c < mapped ? map_value(v, use_abs, scale, bias) : v;
    }
}

// Colour times alpha, for alpha-weighted filtering (engine._filter_alpha_weighted).
// Sizes and offsets are 64-bit: a plane set may pass 2^31 values.
__kernel void premultiply(__global const float *colour, long colour_off,
                          __global const float *alpha, long alpha_off,
                          __global float *dst, long n)
{
    const size_t i = get_global_id(0), c = get_global_id(1);
    if (i >= n) return;
    dst[c * n + i] = colour[colour_off + c * n + i] * alpha[alpha_off + i];
}

// num / den: sum(k*a*c) / sum(k*a) (|k| for a signed kernel). Where no visible
// pixel contributed (den == 0) the source colour under the anchor is kept, so fully
// transparent areas keep their colour. `zero` is 0 for exact sums; an FFT's sums carry round-off, so there it is a small bound.
__kernel void unpremultiply(__global const float *num, __global const float *den,
                            __global const float *fallback,
                            __global float *dst, long dst_off, long n, float zero)
{
    const size_t i = get_global_id(0), c = get_global_id(1);
    if (i >= n) return;
    const size_t k = c * n + i;
    const float d = den[i];
    dst[dst_off + k] = fabs(d) > zero ? num[k] / d : fallback[k];
}

// Signed kernels under a kept alpha (engine._filter_alpha_weighted): every tap's colour
// counts as a*c + (1-a)*m, so colour = (sum(k*a*c) + m * (sum(k)*alpha_max - sum(k*a))) / alpha_max
// with a in the input's units. dst holds m (unpremultiply's result with |k|) and gets the colour;
// num is sum(k*a*c), den sum(k*a), full sum(k)*alpha_max.
__kernel void fill_hidden(__global const float *num, __global const float *den,
                          __global float *dst, long dst_off, long n, float full, float alpha_max)
{
    const size_t i = get_global_id(0), c = get_global_id(1);
    if (i >= n) return;
    const size_t k = c * n + i;
    dst[dst_off + k] = (num[k] + dst[dst_off + k] * (full - den[i])) / alpha_max;
}

// Gradient magnitude sqrt(gx^2 + gy^2), written into dst at dst_off.
__kernel void magnitude(__global const float *gx, __global const float *gy,
                        __global float *dst, long dst_off, long n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    dst[dst_off + i] = hypot(gx[i], gy[i]);
}

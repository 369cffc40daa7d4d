// Convolution + bias + 2x2 max pooling + ReLU, forward and backward, for small CNNs on a CPU.
//
// Built by cnnlab/kernels/build.py with the machine's own g++ (-O3 -march=native -fopenmp) and
// called through ctypes with the pointers of tensors that the Python side allocates and checks
// (cnnlab/kernels/convpool.py). Here only small working copies are allocated (weights in the
// kernels' order, each thread's list of positions), on the heap, and freed before returning;
// each function returns 0, or 1 where such an allocation failed and nothing was computed.
//
// Why these kernels exist: LeNet-5's convolutions have 1-16 channels, too few for oneDNN's
// kernels to fill a vector register, and its pooling and ReLU are separate passes over the
// largest maps. Here each layer is one pass forward and one backward:
// - forward computes two rows of convolution outputs in registers, adds the bias, pools each
//   2x2 window (the first maximum in row-major order wins, NaN wins, as in PyTorch's kernel),
//   applies the ReLU and stores only the pooled map and which of the four won;
// - backward visits only the pooled outputs whose ReLU passed a gradient: each sends it to one
//   convolution output, so the weight and input gradients cost a quarter (or less) of the dense
//   convolutions' arithmetic, exactly the same sums without the zeros.
//
// Two forward layouts: "wide" vectorizes over output columns (a first layer with few output
// channels, reading the padded CHW image), "deep" over output channels (later layers, reading the
// HWC maps that the previous layer wrote). Backward is one routine for both layouts.
//
// Determinism: every image is computed alone; the weight and bias gradients are summed per
// fixed chunk of images and the chunks are added in order, so a result does not depend on the
// number of threads or their timing.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <immintrin.h>
#include <omp.h>

#if defined(__AVX512F__)
#define VL 16
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
#define EVEN {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}
#define ODD {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}
#else
#define VL 8
typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
#define EVEN {0, 2, 4, 6, 8, 10, 12, 14}
#define ODD {1, 3, 5, 7, 9, 11, 13, 15}
#endif

static inline vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// The first `count` (1 to VL) floats at p, the rest zero; and their store, leaving the rest.
#if VL == 16
static inline __mmask16 first(int count) { return (__mmask16)((1u << count) - 1); }
static inline vf load_n(const float* p, int count) {
    return (vf)_mm512_maskz_loadu_ps(first(count), p);
}
static inline void store_n(float* p, vf v, int count) {
    _mm512_mask_storeu_ps(p, first(count), (__m512)v);
}
#else
static inline __m256i first(int count) {
    const vi lane = {0, 1, 2, 3, 4, 5, 6, 7};
    return (__m256i)(lane < count);
}
static inline vf load_n(const float* p, int count) {
    return (vf)_mm256_maskload_ps(p, first(count));
}
static inline void store_n(float* p, vf v, int count) {
    _mm256_maskstore_ps(p, first(count), (__m256)v);
}
#endif

// Half vectors of 8 floats, for rows of 8 or fewer (a first layer's patch rows): two of their
// multiply-adds issue per cycle where one of 16 floats does, and a load of 8 spans less memory.
typedef float vh __attribute__((vector_size(32)));
static inline vh load_h(const float* p, int count) {
#if VL == 16
    return (vh)_mm256_maskz_loadu_ps((__mmask8)((1u << count) - 1), p);
#else
    return (vh)_mm256_maskload_ps(p, first(count));
#endif
}
static inline void store_h(float* p, vh v, int count) {
#if VL == 16
    _mm256_mask_storeu_ps(p, (__mmask8)((1u << count) - 1), (__m256)v);
#else
    _mm256_maskstore_ps(p, first(count), (__m256)v);
#endif
}

// to[0:L] += g * from[0:L], a vector at a time; only the last one masked (masked stores are
// slow on some processors).
static inline void add_scaled(float* to, const float* from, float g, int L) {
    int l = 0;
    for (; l + VL <= L; l += VL) store(to + l, load(to + l) + g * load(from + l));
    if (l < L) store_n(to + l, load_n(to + l, L - l) + g * load_n(from + l, L - l), L - l);
}

// The 2x2 window's maximum and which element won (0-3, row-major), as PyTorch's max pooling:
// a later element wins only when strictly greater, or when it is NaN.
static inline void pool4(vf a00, vf a01, vf a10, vf a11, vf& best, vi& which) {
    best = a00;
    which = vi{} + 0;
    vi take = (a01 > best) | (a01 != a01);
    best = take ? a01 : best;
    which = take ? vi{} + 1 : which;
    take = (a10 > best) | (a10 != a10);
    best = take ? a10 : best;
    which = take ? vi{} + 2 : which;
    take = (a11 > best) | (a11 != a11);
    best = take ? a11 : best;
    which = take ? vi{} + 3 : which;
}

// ReLU as PyTorch's: NaN stays NaN.
static inline vf relu(vf v) { return (v < 0) ? vf{} : v; }

extern "C" int cnnlab_vector_lanes() { return VL; }

// A weight tensor (Co, C, K, K) as PyTorch holds it, any strides (channels-last included).
struct Weights {
    const float* data;
    long s0, s1, s2, s3;
    float at(int o, int c, int ky, int kx) const {
        return data[o * s0 + c * s1 + ky * s2 + kx * s3];
    }
};

// Zero-filled memory, aligned for vectors, freed with its scope: a call's own copy of the
// weights in the order its loops read them, a thread's working lists. data is null where the
// allocation failed.
template <typename T>
struct Buffer {
    T* data;
    explicit Buffer(size_t count) {
        const size_t bytes = (count * sizeof(T) + 63) / 64 * 64 + 64;
        data = (T*)std::aligned_alloc(64, bytes);
        if (data) std::memset((void*)data, 0, bytes);
    }
    ~Buffer() { std::free(data); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
};

// ---------------------------------------------------------------------------------------------
// Wide forward: input x (N, C, H, W) contiguous; weights (Co, C, K, K); bias b (Co). Writes the
// zero-padded image to xp (N, C, Hp, Wpa), Wpa >= 2 * VL * ceil(Wo / (2 * VL)) + K - 1, which
// backward reads again, and the pooled maps y and winners idx as (N, Hq, Wq, Co).
constexpr int CB = 6;  // output channels per register block

extern "C" int cnnlab_wide_forward(const float* x, int N, int C, int H, int W, int pad,
                                    const float* weight, long s0, long s1, long s2, long s3,
                                    const float* bias, int Co, int K, float* xp, int Wpa,
                                    float* y, uint8_t* idx, int threads) {
    const int Hp = H + 2 * pad, Ho = Hp - K + 1, Wo = W + 2 * pad - K + 1;
    const int Hq = Ho / 2, Wq = Wo / 2, KK = K * K;
    const int Cop = (Co + CB - 1) / CB * CB;  // whole blocks; the channels past Co are zero
    const Weights given{weight, s0, s1, s2, s3};
    Buffer<float> blocked((size_t)Cop * C * KK);
    if (!blocked.data) return 1;
    float* const w = blocked.data;
    for (int o = 0; o < Co; ++o)
        for (int c = 0; c < C; ++c)
            for (int ky = 0; ky < K; ++ky)
                for (int kx = 0; kx < K; ++kx)
                    w[((o * C + c) * K + ky) * K + kx] = given.at(o, c, ky, kx);
    const vi even = EVEN, odd = ODD;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int n = 0; n < N; ++n) {
        float* img = xp + (size_t)n * C * Hp * Wpa;
        std::memset(img, 0, sizeof(float) * C * Hp * Wpa);
        for (int c = 0; c < C; ++c)
            for (int r = 0; r < H; ++r)
                std::memcpy(img + ((size_t)c * Hp + r + pad) * Wpa + pad,
                            x + (((size_t)n * C + c) * H + r) * W, sizeof(float) * W);
        for (int cob = 0; cob < Cop; cob += CB) {
            for (int py = 0; py < Hq; ++py) {
                for (int ox0 = 0; ox0 < 2 * Wq; ox0 += 2 * VL) {
                    vf acc[2][CB][2] = {};
                    for (int c = 0; c < C; ++c) {
                        const float* wc = w + ((size_t)cob * C + c) * KK;
                        for (int ky = 0; ky < K; ++ky) {
                            const float* r0 = img + ((size_t)c * Hp + 2 * py + ky) * Wpa + ox0;
                            const float* r1 = r0 + Wpa;
                            for (int kx = 0; kx < K; ++kx) {
                                const vf a0 = load(r0 + kx), a1 = load(r0 + kx + VL);
                                const vf b0 = load(r1 + kx), b1 = load(r1 + kx + VL);
                                for (int o = 0; o < CB; ++o) {
                                    const float wv = wc[(size_t)o * C * KK + ky * K + kx];
                                    acc[0][o][0] += a0 * wv;
                                    acc[0][o][1] += a1 * wv;
                                    acc[1][o][0] += b0 * wv;
                                    acc[1][o][1] += b1 * wv;
                                }
                            }
                        }
                    }
                    const int q0 = ox0 / 2, count = Wq - q0 < VL ? Wq - q0 : VL;
                    for (int o = 0; o < CB && cob + o < Co; ++o) {
                        const float b = bias[cob + o];
                        const vf a00 = __builtin_shuffle(acc[0][o][0], acc[0][o][1], even) + b;
                        const vf a01 = __builtin_shuffle(acc[0][o][0], acc[0][o][1], odd) + b;
                        const vf a10 = __builtin_shuffle(acc[1][o][0], acc[1][o][1], even) + b;
                        const vf a11 = __builtin_shuffle(acc[1][o][0], acc[1][o][1], odd) + b;
                        vf best;
                        vi which;
                        pool4(a00, a01, a10, a11, best, which);
                        best = relu(best);
                        const size_t at = (((size_t)n * Hq + py) * Wq + q0) * Co + cob + o;
                        for (int q = 0; q < count; ++q) {
                            y[at + (size_t)q * Co] = best[q];
                            idx[at + (size_t)q * Co] = (uint8_t)which[q];
                        }
                    }
                }
            }
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Deep forward: input x (N, H, W, C) contiguous (HWC), already padded; weights (Co, C, K, K);
// bias (Co). Writes the pooled maps y and winners idx as (N, Hq, Wq, Co) when hwc, else
// (N, Co, Hq, Wq). The tiles read the weights as (K, K, C, Cop), Cop a multiple of VL.
template <int TQ>
static inline void deep_tile(const float* x, int H, int W, int C, const float* wt,
                             const float* b, int Co, int Cop, int K, int n, int py, int q0,
                             int cob, int Hq, int Wq, int hwc, float* y, uint8_t* idx) {
    vf acc[2][2 * TQ] = {};
    for (int ky = 0; ky < K; ++ky) {
        for (int kx = 0; kx < K; ++kx) {
            const float* r0 = x + (((size_t)n * H + 2 * py + ky) * W + 2 * q0 + kx) * C;
            const float* r1 = r0 + (size_t)W * C;
            const float* wk = wt + ((size_t)(ky * K + kx) * C) * Cop + cob;
            for (int c = 0; c < C; ++c) {
                const vf wv = load(wk + (size_t)c * Cop);
                for (int j = 0; j < 2 * TQ; ++j) {
                    acc[0][j] += wv * r0[(size_t)j * C + c];
                    acc[1][j] += wv * r1[(size_t)j * C + c];
                }
            }
        }
    }
    const vf bias = load(b + cob);
    const int lanes = Co - cob < VL ? Co - cob : VL;
    for (int q = 0; q < TQ; ++q) {
        vf best;
        vi which;
        pool4(acc[0][2 * q] + bias, acc[0][2 * q + 1] + bias, acc[1][2 * q] + bias,
              acc[1][2 * q + 1] + bias, best, which);
        best = relu(best);
        if (hwc) {
            const size_t at = (((size_t)n * Hq + py) * Wq + q0 + q) * Co + cob;
            for (int l = 0; l < lanes; ++l) {
                y[at + l] = best[l];
                idx[at + l] = (uint8_t)which[l];
            }
        } else {
            const size_t plane = (size_t)Hq * Wq;
            const size_t at = ((size_t)n * Co + cob) * plane + (size_t)py * Wq + q0 + q;
            for (int l = 0; l < lanes; ++l) {
                y[at + l * plane] = best[l];
                idx[at + l * plane] = (uint8_t)which[l];
            }
        }
    }
}

extern "C" int cnnlab_deep_forward(const float* x, int N, int C, int H, int W,
                                    const float* weight, long s0, long s1, long s2, long s3,
                                    const float* bias, int Co, int K, float* y, uint8_t* idx,
                                    int hwc, int threads) {
    const int Hq = (H - K + 1) / 2, Wq = (W - K + 1) / 2;
    const int Cop = (Co + VL - 1) / VL * VL;  // whole vectors; the channels past Co are zero
    const Weights given{weight, s0, s1, s2, s3};
    Buffer<float> spread((size_t)K * K * C * Cop), shifted(Cop);
    if (!spread.data || !shifted.data) return 1;
    float* const wt = spread.data;
    float* const b = shifted.data;
    for (int o = 0; o < Co; ++o) {
        b[o] = bias[o];
        for (int c = 0; c < C; ++c)
            for (int ky = 0; ky < K; ++ky)
                for (int kx = 0; kx < K; ++kx)
                    wt[((ky * K + kx) * C + c) * Cop + o] = given.at(o, c, ky, kx);
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int n = 0; n < N; ++n) {
        for (int cob = 0; cob < Cop; cob += VL) {
            for (int py = 0; py < Hq; ++py) {
                int q0 = 0;
                for (; q0 + 5 <= Wq; q0 += 5)
                    deep_tile<5>(x, H, W, C, wt, b, Co, Cop, K, n, py, q0, cob, Hq, Wq, hwc, y, idx);
                for (; q0 + 2 <= Wq; q0 += 2)
                    deep_tile<2>(x, H, W, C, wt, b, Co, Cop, K, n, py, q0, cob, Hq, Wq, hwc, y, idx);
                for (; q0 < Wq; ++q0)
                    deep_tile<1>(x, H, W, C, wt, b, Co, Cop, K, n, py, q0, cob, Hq, Wq, hwc, y, idx);
            }
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// One image's gradients from one output channel. A patch is R rows of L floats, row r at
// img + corner + roff[r]: HWC, R = K rows of K*C floats; CHW, R = C*K rows of K floats.
// First the positions whose ReLU passed a gradient are listed (without a branch that the
// processor would guess wrong half of the time), then each sends its share to the weight
// gradient, summed in registers where R and the vectors per row (NV) are known here (0: count
// at run time, in memory), and to the input gradient.
template <int RT, int NV>
static void channel_backward(const float* img, float* gimg, int R, int L, int nv,
                             const size_t* roff, const float* wo, float* gwo, float* gbo,
                             const float* gs, const size_t* corners, int count, vf* spill) {
    const int rows = RT ? RT : R, vecs = NV ? NV : nv;
    const int tail = L - (vecs - 1) * VL;
    vf local[RT && NV ? RT * NV : 1];
    vf* acc = RT && NV ? local : spill;
    for (int i = 0; i < rows * vecs; ++i) acc[i] = vf{};
    float bias_sum = 0;
    for (int e = 0; e < count; ++e) {
        const float g = gs[e];
        bias_sum += g;
        for (int r = 0; r < rows; ++r) {
            const float* src = img + corners[e] + roff[r];
            for (int v = 0; v < vecs; ++v)
                acc[r * vecs + v] += g * load_n(src + v * VL, v == vecs - 1 ? tail : VL);
        }
    }
    if (gimg)
        for (int e = 0; e < count; ++e)
            for (int r = 0; r < rows; ++r)
                add_scaled(gimg + corners[e] + roff[r], wo + r * L, gs[e], L);
    for (int r = 0; r < rows; ++r)
        for (int v = 0; v < vecs; ++v) {
            const int n = v == vecs - 1 ? tail : VL;
            float* to = gwo + r * L + v * VL;
            store_n(to, load_n(to, n) + acc[r * vecs + v], n);
        }
    *gbo += bias_sum;
}

// The weight gradients of one image from a group of G output channels at once, where a patch
// is RT rows of at most VL floats (a first layer's few input channels) and no input gradient
// is wanted: every pooled position once, every channel's share added whether its ReLU passed
// it or not (then it is zero). With rows this short, listing the positions (as
// channel_backward does) costs more than these multiply-adds, and the processor guesses no
// branch.
template <int RT, int G>
static void group_backward(const float* img, int L, const size_t* roff, float* gwc, float* gbc,
                           int o0, const float* y, const uint8_t* idx, const float* gy,
                           size_t at0, size_t step_o, size_t step_p, int Hq, int Wq, int row) {
    vh acc[G][RT] = {};
    float bias_sum[G] = {};
    for (int py = 0; py < Hq; ++py) {
        for (int q = 0; q < Wq; ++q) {
            const size_t at = at0 + ((size_t)py * Wq + q) * step_p;
            for (int j = 0; j < G; ++j) {
                const size_t here = at + (size_t)(o0 + j) * step_o;
                const float g = y[here] > 0 ? gy[here] : 0.0f;  // the ReLU passed it, or not
                const int oy = 2 * py + (idx[here] >> 1), ox = 2 * q + (idx[here] & 1);
                const float* src = img + (size_t)oy * row + ox;  // CHW: the patch's corner
                bias_sum[j] += g;
                for (int r = 0; r < RT; ++r) acc[j][r] += g * load_h(src + roff[r], L);
            }
        }
    }
    for (int j = 0; j < G; ++j) {
        float* gwo = gwc + (size_t)(o0 + j) * RT * L;
        for (int r = 0; r < RT; ++r)
            store_h(gwo + r * L, load_h(gwo + r * L, L) + acc[j][r], L);
        gbc[o0 + j] += bias_sum[j];
    }
}

constexpr int CHUNK = 8;

// Backward of either layout. The input xp is what forward read: the padded CHW image (N, C, Hp,
// Wpa) when hwc_in is 0, the HWC maps (N, Hp, Wp, C) when it is 1; `row` is the floats in one
// of its rows. A patch of xp is ordered (C, K, K) for CHW and (K, K, C) for HWC; the weights
// (Co, C, K, K, any strides) are copied into that order when the input gradient is wanted, and
// the weight gradients are summed in it, then written to gw with gw's own strides (those of
// the weight). y, idx and the incoming gradient gy are in forward's output layout (hwc_out).
// gx, when not null, receives the input gradient in xp's layout. scratch holds
// ceil(N / CHUNK) * Co * (C*K*K + 1) floats.
extern "C" int cnnlab_backward(const float* xp, int N, int C, int Hp, int row, int hwc_in,
                                const float* weight, long s0, long s1, long s2, long s3,
                                int Co, int K, const float* y, const uint8_t* idx,
                                const float* gy, int Hq, int Wq, int hwc_out, float* gw,
                                long g0, long g1, long g2, long g3, float* gb, float* gx,
                                float* scratch, int threads) {
    const int P = C * K * K;  // one patch
    const int R = hwc_in ? K : C * K, L = hwc_in ? K * C : K, nv = (L + VL - 1) / VL;
    const int chunks = (N + CHUNK - 1) / CHUNK;
    const size_t per_chunk = (size_t)Co * (P + 1);
    const size_t image = (size_t)(hwc_in ? 1 : C) * Hp * row;
    // Where element (c, ky, kx) of a patch lies in patch order.
    auto place = [&](int c, int ky, int kx) {
        return hwc_in ? (ky * K + kx) * C + c : (c * K + ky) * K + kx;
    };
    const Weights given{weight, s0, s1, s2, s3};
    Buffer<float> ordered(gx ? (size_t)Co * P : 0);
    if (!ordered.data) return 1;
    const float* const wl = ordered.data;
    if (gx)
        for (int o = 0; o < Co; ++o)
            for (int c = 0; c < C; ++c)
                for (int ky = 0; ky < K; ++ky)
                    for (int kx = 0; kx < K; ++kx)
                        ordered.data[(size_t)o * P + place(c, ky, kx)] = given.at(o, c, ky, kx);
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        const size_t positions = (size_t)Hq * Wq;
        Buffer<vf> spill_b((size_t)R * nv);
        Buffer<float> gs_b(positions);
        Buffer<size_t> corners_b(positions), roff_b(R);
        vf* const spill = spill_b.data;
        float* const gs = gs_b.data;
        size_t* const corners = corners_b.data;
        size_t* const roff = roff_b.data;  // where row r of a patch starts
        const bool ready = spill && gs && corners && roff;
        if (!ready) {
#pragma omp atomic write
            failed = 1;
        }
        for (int r = 0; ready && r < R; ++r)
            roff[r] = hwc_in ? (size_t)r * row : ((size_t)(r / K) * Hp + r % K) * row;
#pragma omp for schedule(static)
        for (int ch = 0; ch < chunks; ++ch) {
            if (!ready) continue;
            float* gwc = scratch + ch * per_chunk;
            float* gbc = gwc + (size_t)Co * P;
            std::memset(gwc, 0, sizeof(float) * per_chunk);
            const int end = (ch + 1) * CHUNK < N ? (ch + 1) * CHUNK : N;
            for (int n = ch * CHUNK; n < end; ++n) {
                const float* img = xp + n * image;
                float* gimg = gx ? gx + n * image : nullptr;
                if (gimg) std::memset(gimg, 0, sizeof(float) * image);
                int o = 0;
                if (!gimg && !hwc_in && L <= 8) {  // a first layer: groups of 3 channels
                    const size_t at0 = hwc_out ? (size_t)n * Hq * Wq * Co
                                               : (size_t)n * Co * Hq * Wq;
                    const size_t step_o = hwc_out ? 1 : (size_t)Hq * Wq;
                    const size_t step_p = hwc_out ? Co : 1;
                    for (; o + 3 <= Co && (R == 5 || R == 3); o += 3) {
                        if (R == 5)
                            group_backward<5, 3>(img, L, roff, gwc, gbc, o, y, idx, gy, at0,
                                                 step_o, step_p, Hq, Wq, row);
                        else
                            group_backward<3, 3>(img, L, roff, gwc, gbc, o, y, idx, gy, at0,
                                                 step_o, step_p, Hq, Wq, row);
                    }
                }
                for (; o < Co; ++o) {
                    // Channel o's pooled outputs of image n, in forward's layout.
                    const size_t at0 = hwc_out ? (size_t)n * Hq * Wq * Co + o
                                               : ((size_t)n * Co + o) * Hq * Wq;
                    const size_t step = hwc_out ? Co : 1;
                    int count = 0;
                    for (int py = 0; py < Hq; ++py)
                        for (int q = 0; q < Wq; ++q) {
                            const size_t at = at0 + ((size_t)py * Wq + q) * step;
                            const int oy = 2 * py + (idx[at] >> 1), ox = 2 * q + (idx[at] & 1);
                            gs[count] = gy[at];
                            corners[count] = (size_t)oy * row + (size_t)ox * (hwc_in ? C : 1);
                            count += (y[at] > 0) & (gy[at] != 0);  // the ReLU passed it
                        }
                    const float* wo = wl + (size_t)o * P;
                    float* gwo = gwc + (size_t)o * P;
                    float* gbo = gbc + o;
#define SHAPE(RT, NV)                                                                  \
    if ((RT == 0 || R == RT) && (NV == 0 || nv == NV)) {                               \
        channel_backward<RT, NV>(img, gimg, R, L, nv, roff, wo, gwo, gbo, gs, corners, \
                                 count, spill);                                        \
        continue;                                                                      \
    }
                    SHAPE(5, 1)
                    SHAPE(5, 2)
                    SHAPE(3, 1)
                    SHAPE(3, 2)
                    SHAPE(0, 0)
#undef SHAPE
                }
            }
        }
    }
    if (failed) return 1;
    // The chunks in order, into the first: the same sums whatever the number of threads.
    for (int ch = 1; ch < chunks; ++ch) {
        const float* gwc = scratch + ch * per_chunk;
        for (size_t i = 0; i < per_chunk; ++i) scratch[i] += gwc[i];
    }
    for (int o = 0; o < Co; ++o) {
        gb[o] = scratch[(size_t)Co * P + o];
        for (int c = 0; c < C; ++c)
            for (int ky = 0; ky < K; ++ky)
                for (int kx = 0; kx < K; ++kx)
                    gw[o * g0 + c * g1 + ky * g2 + kx * g3] =
                        scratch[(size_t)o * P + place(c, ky, kx)];
    }
    return 0;
}

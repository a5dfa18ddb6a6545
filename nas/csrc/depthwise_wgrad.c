/* The weight gradient of a depthwise convolution on channels-last (NHWC) tensors, fp32 or bf16 in,
 * fp32 accumulated and out:
 *
 *     dw[i][j][c] = sum over n, ho, wo of  dy[n][ho][wo][c] * x[n][ho*s + i - p][wo*s + j - p][c]
 *
 * (zero padding p, stride s, no dilation). oneDNN computes this at 5-20 GFLOP/s on a CPU; here, for
 * each output row and kernel row, the KW accumulators of a block of 16 channels (8 without AVX-512)
 * stay in vector registers while the row is swept a few output columns at a time (see ROW). Written
 * with GCC/Clang vector extensions (the compiler picks AVX-512, AVX2 or NEON for them); the batch
 * is split across threads (pthreads, so no second OpenMP runtime runs beside PyTorch's), each with
 * its own accumulators, summed at the end. Built and loaded by nas/native.py.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float f32x16 __attribute__((vector_size(64)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));

/* loads of 16 or 8 channels as fp32 (bf16 is the top half of an fp32) */
static inline f32x16 load16_f32(const float *p) { f32x16 v; memcpy(&v, p, sizeof v); return v; }
static inline f32x8 load8_f32(const float *p) { f32x8 v; memcpy(&v, p, sizeof v); return v; }
static inline f32x16 load16_bf16(const uint16_t *p) {
    u16x16 h; memcpy(&h, p, sizeof h);
    u32x16 u = __builtin_convertvector(h, u32x16) << 16;
    f32x16 v; memcpy(&v, &u, sizeof v); return v;
}
static inline f32x8 load8_bf16(const uint16_t *p) {
    u16x8 h; memcpy(&h, p, sizeof h);
    u32x8 u = __builtin_convertvector(h, u32x8) << 16;
    f32x8 v; memcpy(&v, &u, sizeof v); return v;
}
static inline float load1_f32(const float *p) { return *p; }
static inline float load1_bf16(const uint16_t *p) { uint32_t u = (uint32_t)*p << 16; float f; memcpy(&f, &u, 4); return f; }

typedef struct {
    const void *x, *dy;
    float *acc;                      /* kh * kw * C accumulators of this thread */
    int n0, n1;                      /* the batch entries this thread sums */
    int H, W, C, Ho, Wo, kh, kw, s, p;
} job_t;

/* One (output row, kernel row) pair: all KW taps for channels [c, c + V) with V-wide vectors. The KW
 * accumulators stay in registers while the row is swept, BW output columns at a time: their BW dy vectors
 * are loaded once, then each input column they touch (s(BW-1) + KW of them) is loaded once and multiplied
 * into every tap it meets, so there are about 3 multiply-adds per load instead of one (KW=7, BW=4, s=1).
 * Registers: KW accumulators + BW dy + 1 input vector, which fits AVX2's 16 for KW=7 at 8 channels. */
#define BW 4
/* 16-channel vectors where there are 32 vector registers (AVX-512); with AVX2's 16, 8 channels */
#ifdef __AVX512F__
#define WIDE 1
#else
#define WIDE 0
#endif
/* The row's interior, BW output columns at a time, for stride S (a constant, so the taps unroll). */
#define BLOCKS(T, VEC, LOAD, KW, S)                                                                     \
    for (; wo + BW <= j->Wo && S * wo - j->p + S * (BW - 1) + KW <= j->W; wo += BW) {                   \
        const T *xv = xrow + (size_t)(S * wo - j->p) * C + c;                                          \
        VEC g[BW];                                                                                      \
        for (int b = 0; b < BW; b++) g[b] = LOAD(dyrow + (size_t)(wo + b) * C + c);                     \
        _Pragma("GCC unroll 16")                                                                        \
        for (int q = 0; q < S * (BW - 1) + KW; q++) {                                                   \
            VEC xq = LOAD(xv + (size_t)q * C);                                                          \
            _Pragma("GCC unroll 4")                                                                     \
            for (int b = 0; b < BW; b++)                                                                \
                if (q - S * b >= 0 && q - S * b < KW) r[q - S * b] += g[b] * xq;                        \
        }                                                                                               \
    }
/* Output column wo, each tap checked against the row's ends (an edge column). */
#define EDGE_COLUMN(VEC, LOAD, KW)                                                                      \
    {                                                                                                   \
        VEC g = LOAD(dyrow + (size_t)wo * C + c);                                                       \
        for (int t = 0; t < KW; t++) {                                                                  \
            int wi = wo * s - j->p + t;                                                                 \
            if (wi >= 0 && wi < j->W) r[t] += g * LOAD(xrow + (size_t)wi * C + c);                      \
        }                                                                                               \
    }
#define ROW(NAME, T, V, VEC, LOAD, KW)                                                                  \
    static inline void NAME(const T *xrow, const T *dyrow, float *a, const job_t *j, int c) {         \
        VEC r[KW];                                                                                      \
        const int s = j->s, C = j->C;                                                                   \
        for (int t = 0; t < KW; t++) memcpy(&r[t], a + (size_t)t * C + c, sizeof(VEC));                \
        int wo = 0;                                                                                     \
        for (; wo < j->Wo && wo * s - j->p < 0; wo++) /* the left edge, until the input starts at 0 */ \
            EDGE_COLUMN(VEC, LOAD, KW)                                                                  \
        if (s == 1) BLOCKS(T, VEC, LOAD, KW, 1)                                                         \
        else if (s == 2) BLOCKS(T, VEC, LOAD, KW, 2)                                                    \
        for (; wo < j->Wo; wo++) { /* what is left: one column at a time, taps past the edge skipped */ \
            int w0 = wo * s - j->p;                                                                     \
            if (w0 >= 0 && w0 + KW <= j->W) {                                                           \
                VEC g = LOAD(dyrow + (size_t)wo * C + c);                                               \
                const T *xv = xrow + (size_t)w0 * C + c;                                                \
                for (int t = 0; t < KW; t++) r[t] += g * LOAD(xv + (size_t)t * C);                      \
            } else                                                                                      \
                EDGE_COLUMN(VEC, LOAD, KW)                                                              \
        }                                                                                               \
        for (int t = 0; t < KW; t++) memcpy(a + (size_t)t * C + c, &r[t], sizeof(VEC));                 \
    }

#define KERNEL(T, SUFFIX)                                                                               \
    ROW(row16_3_##SUFFIX, T, 16, f32x16, load16_##SUFFIX, 3)                                            \
    ROW(row16_5_##SUFFIX, T, 16, f32x16, load16_##SUFFIX, 5)                                            \
    ROW(row16_7_##SUFFIX, T, 16, f32x16, load16_##SUFFIX, 7)                                            \
    ROW(row8_3_##SUFFIX, T, 8, f32x8, load8_##SUFFIX, 3)                                                \
    ROW(row8_5_##SUFFIX, T, 8, f32x8, load8_##SUFFIX, 5)                                                \
    ROW(row8_7_##SUFFIX, T, 8, f32x8, load8_##SUFFIX, 7)                                                \
    static void *run_##SUFFIX(void *arg) {                                                              \
        const job_t *j = (const job_t *)arg;                                                            \
        const T *x = (const T *)j->x, *dy = (const T *)j->dy;                                           \
        for (int n = j->n0; n < j->n1; n++)                                                             \
            for (int ho = 0; ho < j->Ho; ho++)                                                          \
                for (int i = 0; i < j->kh; i++) {                                                       \
                    int hi = ho * j->s + i - j->p;                                                      \
                    if (hi < 0 || hi >= j->H) continue;                                                 \
                    const T *xrow = x + ((size_t)n * j->H + hi) * j->W * j->C;                          \
                    const T *dyrow = dy + ((size_t)n * j->Ho + ho) * j->Wo * j->C;                      \
                    float *a = j->acc + (size_t)i * j->kw * j->C;                                       \
                    int c = 0;                                                                          \
                    for (; WIDE && c + 16 <= j->C; c += 16) {                                                   \
                        if (j->kw == 3) row16_3_##SUFFIX(xrow, dyrow, a, j, c);                         \
                        else if (j->kw == 5) row16_5_##SUFFIX(xrow, dyrow, a, j, c);                    \
                        else row16_7_##SUFFIX(xrow, dyrow, a, j, c);                                    \
                    }                                                                                   \
                    for (; c + 8 <= j->C; c += 8) {                                                     \
                        if (j->kw == 3) row8_3_##SUFFIX(xrow, dyrow, a, j, c);                          \
                        else if (j->kw == 5) row8_5_##SUFFIX(xrow, dyrow, a, j, c);                     \
                        else row8_7_##SUFFIX(xrow, dyrow, a, j, c);                                     \
                    }                                                                                   \
                    for (; c < j->C; c++)                                                               \
                        for (int wo = 0; wo < j->Wo; wo++)                                              \
                            for (int t = 0; t < j->kw; t++) {                                           \
                                int wi = wo * j->s - j->p + t;                                          \
                                if (wi >= 0 && wi < j->W)                                               \
                                    a[(size_t)t * j->C + c] += load1_##SUFFIX(dyrow + (size_t)wo * j->C + c) \
                                                               * load1_##SUFFIX(xrow + (size_t)wi * j->C + c); \
                            }                                                                           \
                }                                                                                       \
        return NULL;                                                                                    \
    }
KERNEL(float, f32)
KERNEL(uint16_t, bf16)

/* dw: kh * kw * C floats, laid out [i][j][c]. bf16: 1 if x and dy hold bf16, else fp32. kw must be
 * 3, 5 or 7 (the caller checks). Returns 0, or -1 if memory ran out (dw is then undefined). */
int depthwise_wgrad(const void *x, const void *dy, float *dw, int bf16, int N, int H, int W, int C, int Ho,
                    int Wo, int kh, int kw, int s, int p, int threads) {
    if (threads < 1) threads = 1;
    if (threads > N) threads = N;
    size_t size = (size_t)kh * kw * C;
    if (threads > 64) threads = 64;
    job_t jobs[64];
    pthread_t ids[64];
    int started[64] = {0};
    float *acc = calloc(size * (size_t)threads, sizeof(float));
    if (acc == NULL) return -1;
    void *(*run)(void *) = bf16 ? run_bf16 : run_f32;
    for (int t = 0; t < threads; t++)
        jobs[t] = (job_t){x, dy, acc + size * t, (int)((long)N * t / threads), (int)((long)N * (t + 1) / threads),
                          H, W, C, Ho, Wo, kh, kw, s, p};
#ifdef _OPENMP  /* PyTorch's own thread team (see bn_act.c's run()) */
#pragma omp parallel for num_threads(threads) schedule(static, 1) if (threads > 1)
    for (int t = 0; t < threads; t++) run(&jobs[t]);
    (void)ids; (void)started;
#else
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&ids[t], NULL, run, &jobs[t]) == 0;
    run(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else run(&jobs[t]);  /* no thread for it: sum it here */
    }
#endif
    memcpy(dw, acc, size * sizeof(float));
    for (int t = 1; t < threads; t++)
        for (size_t q = 0; q < size; q++) dw[q] += acc[size * t + q];
    free(acc);
    return 0;
}

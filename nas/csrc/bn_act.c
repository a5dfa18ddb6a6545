/* Training-mode BatchNorm fused with the activation after it, on channels-last (NHWC) tensors seen
 * as M = N*H*W rows of C channels, fp32 or bf16 in and out, fp32 arithmetic:
 *
 *     forward:   mean, var over the rows;  y = act(x * scale + shift),
 *                scale = weight / sqrt(var + eps), shift = bias - mean * scale
 *     backward:  xhat = (x - mean) * invstd,  g = dy * act'(x * scale + shift)
 *                dbias = sum g,  dweight = sum g * xhat,
 *                dx = scale * (g - dbias / M - xhat * dweight / M)
 *
 * PyTorch's CPU batch_norm backward on channels-last bf16/fp32 tensors of a few dozen channels runs
 * at 3-4 ns an element (a copy runs at 0.15), and the activation's forward and backward are two more
 * passes each; here the forward is two passes over x (statistics, then y) and the backward two: the
 * activation's gradient g = dy * act'(z), recomputed from x rather than stored, written into dx
 * while its sums are taken, then dx from g and x in place.
 *
 * Plain C loops over the channels of a row, which the compiler vectorises (-O3 -march=native);
 * exp and erf are polynomial approximations written as arithmetic so they vectorise too (erf:
 * Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). Rows are split across pthreads; sums are kept per
 * thread in fp32 over blocks of BLOCK rows, then added in double. Built and loaded by nas/native.py.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ACT_NONE = 0, ACT_RELU = 1, ACT_GELU = 2, ACT_SILU = 3 };
#define BLOCK 64
#define MAX_THREADS 64

static inline float bf16_to_f32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t f32_to_bf16(float f) {  /* round to nearest even, as PyTorch does (NaN aside) */
    uint32_t u; memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float load(const void *p, int bf16, size_t i) {
    return bf16 ? bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* e^x for x <= 0 down to -87 (clamped): x = n ln2 + r, e^r by a degree-6 polynomial, 2^n in the exponent bits */
static inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  /* round to nearest: 1.5 * 2^23 */
    float r = x - n * 0.693145752f - n * 1.42860677e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666791f + r * (0.00833333377f
              + r * 0.00138888892f)))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale; memcpy(&scale, &bits, 4);
    return p * scale;
}
/* erf(a) for a >= 0 (A&S 7.1.26), given e = exp(-a^2); the sign is put back by the caller */
static inline float erf_abs(float a, float e) {
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    return 1.0f - poly * e;
}
static inline float act_f(int act, float z) {
    switch (act) {
    case ACT_RELU: return z > 0.0f ? z : 0.0f;
    case ACT_GELU: {  /* z * Phi(z), Phi(z) = (1 + erf(z / sqrt 2)) / 2 */
        float a = fabsf(z) * 0.70710678f, e = erf_abs(a, exp_neg(-a * a));
        return 0.5f * z * (1.0f + (z < 0.0f ? -e : e));
    }
    case ACT_SILU: {
        float e = exp_neg(-fabsf(z));                       /* sigmoid without overflow */
        float s = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        return z * s;
    }
    default: return z;
    }
}
static inline float act_grad(int act, float z) {  /* d act / dz */
    switch (act) {
    case ACT_RELU: return z > 0.0f ? 1.0f : 0.0f;
    case ACT_GELU: {  /* Phi(z) + z * phi(z): phi(z) and erf's exp(-a^2) are the same exponential */
        float a = fabsf(z) * 0.70710678f, g = exp_neg(-a * a), e = erf_abs(a, g);
        return 0.5f * (1.0f + (z < 0.0f ? -e : e)) + z * 0.39894228f * g;
    }
    case ACT_SILU: {
        float e = exp_neg(-fabsf(z));
        float s = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        return s * (1.0f + z * (1.0f - s));
    }
    default: return 1.0f;
    }
}

typedef struct {
    const void *x, *dy;
    void *out;
    int bf16, act, C;
    long r0, r1;                           /* the rows of this job */
    const float *a, *b, *mean, *invstd;    /* per channel: scale, shift (forward) or as named */
    const float *k1, *k2;                  /* backward pass 2: dbias / M and dweight / M */
    double *s1, *s2;                       /* per-job sums, C each */
    float *tmp;                            /* 2 * C floats of block sums */
} job_t;

/* statistics: sums of (x - x[0]) and its square (x[0], the first row, shifts away cancellation) */
static void *stats_job(void *arg) {
    job_t *j = arg;
    int C = j->C;
    float *t1 = j->tmp, *t2 = j->tmp + C;
    const float *shift = j->a;
    for (long r = j->r0; r < j->r1; r += BLOCK) {
        long end = r + BLOCK < j->r1 ? r + BLOCK : j->r1;
        memset(j->tmp, 0, 2 * (size_t)C * sizeof(float));
        for (long q = r; q < end; q++) {
            size_t base = (size_t)q * C;
            if (j->bf16) {
                const uint16_t *x = (const uint16_t *)j->x + base;
                for (int c = 0; c < C; c++) { float d = bf16_to_f32(x[c]) - shift[c]; t1[c] += d; t2[c] += d * d; }
            } else {
                const float *x = (const float *)j->x + base;
                for (int c = 0; c < C; c++) { float d = x[c] - shift[c]; t1[c] += d; t2[c] += d * d; }
            }
        }
        for (int c = 0; c < C; c++) { j->s1[c] += t1[c]; j->s2[c] += t2[c]; }
    }
    return NULL;
}

static inline float ld_f32(const float *p) { return *p; }
static inline float ld_bf16(const uint16_t *p) { return bf16_to_f32(*p); }
static inline void st_f32(float *p, float v) { *p = v; }
static inline void st_bf16(uint16_t *p, float v) { *p = f32_to_bf16(v); }

/* For one activation and one dtype: the forward's y = act(x * a + b); the backward's pass 1 (g into
 * out, and the sums of g and g * (x - mean)) and pass 2 (dx from g and x, in out). */
#define PASSES(NAME, ACT, T, SFX)                                                                        \
    static void NAME##_forward_##SFX(job_t *j) {                                                         \
        int C = j->C;                                                                                    \
        const float *restrict a = j->a, *restrict b = j->b;                                              \
        for (long q = j->r0; q < j->r1; q++) {                                                           \
            const T *restrict x = (const T *)j->x + (size_t)q * C;                                       \
            T *restrict y = (T *)j->out + (size_t)q * C;                                                 \
            for (int c = 0; c < C; c++) st_##SFX(y + c, act_f(ACT, ld_##SFX(x + c) * a[c] + b[c]));      \
        }                                                                                                \
    }                                                                                                    \
    static void NAME##_sums_##SFX(job_t *j) {                                                            \
        int C = j->C;                                                                                    \
        const float *restrict a = j->a, *restrict b = j->b, *restrict mean = j->mean;                    \
        float *restrict t1 = j->tmp, *restrict t2 = j->tmp + C;                                          \
        for (long r = j->r0; r < j->r1; r += BLOCK) {                                                    \
            long end = r + BLOCK < j->r1 ? r + BLOCK : j->r1;                                            \
            memset(j->tmp, 0, 2 * (size_t)C * sizeof(float));                                            \
            for (long q = r; q < end; q++) {                                                             \
                const T *restrict x = (const T *)j->x + (size_t)q * C;                                   \
                const T *restrict dy = (const T *)j->dy + (size_t)q * C;                                 \
                T *restrict gout = (T *)j->out + (size_t)q * C;                                          \
                for (int c = 0; c < C; c++)                                                              \
                    st_##SFX(gout + c, ld_##SFX(dy + c) * act_grad(ACT, ld_##SFX(x + c) * a[c] + b[c]));  \
                for (int c = 0; c < C; c++) {  /* a second loop, so that both vectorise */               \
                    float g = ld_##SFX(gout + c);                                                        \
                    t1[c] += g;                                                                          \
                    t2[c] += g * (ld_##SFX(x + c) - mean[c]);                                            \
                }                                                                                        \
            }                                                                                            \
            for (int c = 0; c < C; c++) { j->s1[c] += t1[c]; j->s2[c] += t2[c]; }                        \
        }                                                                                                \
    }                                                                                                    \
    static void NAME##_dx_##SFX(job_t *j) {  /* out holds g (pass 1): dx overwrites it */                \
        int C = j->C;                                                                                    \
        const float *restrict a = j->a, *restrict mean = j->mean, *restrict invstd = j->invstd;          \
        const float *restrict k1 = j->k1, *restrict k2 = j->k2;                                          \
        for (long q = j->r0; q < j->r1; q++) {                                                           \
            const T *restrict x = (const T *)j->x + (size_t)q * C;                                       \
            T *restrict dx = (T *)j->out + (size_t)q * C;                                                \
            for (int c = 0; c < C; c++) {                                                                \
                float xhat = (ld_##SFX(x + c) - mean[c]) * invstd[c];                                    \
                st_##SFX(dx + c, a[c] * (ld_##SFX(dx + c) - k1[c] - xhat * k2[c]));                      \
            }                                                                                            \
        }                                                                                                \
    }
#define ACTIVATION(NAME, ACT) PASSES(NAME, ACT, float, f32) PASSES(NAME, ACT, uint16_t, bf16)
ACTIVATION(none, ACT_NONE)
ACTIVATION(relu, ACT_RELU)
ACTIVATION(gelu, ACT_GELU)
ACTIVATION(silu, ACT_SILU)

#define DISPATCH(PASS)                                                                                   \
    static void *PASS##_job(void *arg) {                                                                 \
        job_t *j = arg;                                                                                  \
        switch (j->act * 2 + j->bf16) {                                                                  \
        case ACT_RELU * 2: relu_##PASS##_f32(j); break;                                                  \
        case ACT_RELU * 2 + 1: relu_##PASS##_bf16(j); break;                                             \
        case ACT_GELU * 2: gelu_##PASS##_f32(j); break;                                                  \
        case ACT_GELU * 2 + 1: gelu_##PASS##_bf16(j); break;                                             \
        case ACT_SILU * 2: silu_##PASS##_f32(j); break;                                                  \
        case ACT_SILU * 2 + 1: silu_##PASS##_bf16(j); break;                                             \
        case 1: none_##PASS##_bf16(j); break;                                                            \
        default: none_##PASS##_f32(j);                                                                   \
        }                                                                                                \
        return NULL;                                                                                     \
    }
DISPATCH(forward)
DISPATCH(sums)
DISPATCH(dx)

/* Run `fn` on `threads` jobs splitting rows [0, M); job 0 in this thread. */
static void run_jobs(void *(*fn)(void *), job_t *jobs, int threads, long M) {
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        jobs[t].r0 = M * t / threads;
        jobs[t].r1 = M * (t + 1) / threads;
        if (t > 0) started[t] = pthread_create(&ids[t], NULL, fn, &jobs[t]) == 0;
    }
    fn(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else fn(&jobs[t]);  /* no thread for it: run it here */
    }
}

static int clamp_threads(int threads, long M) {
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > M / BLOCK) threads = M / BLOCK > 0 ? (int)(M / BLOCK) : 1;
    return threads;
}

/* Sums per job (2 * C doubles) and block sums (2 * C floats) for `threads` jobs, zeroed; NULL if out of memory. */
static void *sums_alloc(job_t *jobs, int threads, int C) {
    char *mem = calloc((size_t)threads, 2 * (size_t)C * (sizeof(double) + sizeof(float)));
    if (mem == NULL) return NULL;
    for (int t = 0; t < threads; t++) {
        char *p = mem + (size_t)t * 2 * C * (sizeof(double) + sizeof(float));
        jobs[t].s1 = (double *)p;
        jobs[t].s2 = jobs[t].s1 + C;
        jobs[t].tmp = (float *)(jobs[t].s2 + C);
    }
    return mem;
}

/* The forward pass: mean and (biased) var of x's channels out; y = act((x - mean) / sqrt(var + eps) * weight
 * + bias). weight and bias: C floats each. Returns 0, or -1 if memory ran out. */
int bn_act_forward(const void *x, void *y, int bf16, long M, int C, const float *weight, const float *bias,
                   double eps, int act, float *mean, float *var, int threads) {
    threads = clamp_threads(threads, M);
    job_t jobs[MAX_THREADS];
    float *shift = malloc(3 * (size_t)C * sizeof(float));
    if (shift == NULL) return -1;
    float *a = shift + C, *b = shift + 2 * C;
    for (int c = 0; c < C; c++) shift[c] = M > 0 ? load(x, bf16, c) : 0.0f;
    for (int t = 0; t < threads; t++) jobs[t] = (job_t){.x = x, .out = y, .bf16 = bf16, .act = act, .C = C, .a = shift};
    void *mem = sums_alloc(jobs, threads, C);
    if (mem == NULL) { free(shift); return -1; }
    run_jobs(stats_job, jobs, threads, M);
    for (int c = 0; c < C; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int t = 0; t < threads; t++) { s1 += jobs[t].s1[c]; s2 += jobs[t].s2[c]; }
        double m = s1 / (double)M, v = s2 / (double)M - m * m;
        if (v < 0.0) v = 0.0;
        mean[c] = (float)(shift[c] + m);
        var[c] = (float)v;
        double inv = 1.0 / sqrt(v + eps);
        a[c] = (float)(weight[c] * inv);
        b[c] = (float)(bias[c] - (shift[c] + m) * weight[c] * inv);
    }
    for (int t = 0; t < threads; t++) { jobs[t].a = a; jobs[t].b = b; }
    run_jobs(forward_job, jobs, threads, M);
    free(mem);
    free(shift);
    return 0;
}

/* The backward pass, given the forward's mean and var: dx (x's dtype), dweight and dbias (C floats).
 * Returns 0, or -1 if memory ran out. */
int bn_act_backward(const void *x, const void *dy, void *dx, int bf16, long M, int C, const float *weight,
                    const float *bias, const float *mean, const float *var, double eps, int act, float *dweight,
                    float *dbias, int threads) {
    threads = clamp_threads(threads, M);
    job_t jobs[MAX_THREADS];
    float *a = malloc(5 * (size_t)C * sizeof(float));
    if (a == NULL) return -1;
    float *b = a + C, *invstd = a + 2 * C, *k1 = a + 3 * C, *k2 = a + 4 * C;
    for (int c = 0; c < C; c++) {
        double inv = 1.0 / sqrt((double)var[c] + eps);
        invstd[c] = (float)inv;
        a[c] = (float)(weight[c] * inv);
        b[c] = (float)(bias[c] - mean[c] * weight[c] * inv);
    }
    for (int t = 0; t < threads; t++)
        jobs[t] = (job_t){.x = x, .dy = dy, .out = dx, .bf16 = bf16, .act = act, .C = C, .a = a, .b = b,
                          .mean = mean, .invstd = invstd, .k1 = k1, .k2 = k2};
    void *mem = sums_alloc(jobs, threads, C);
    if (mem == NULL) { free(a); return -1; }
    run_jobs(sums_job, jobs, threads, M);
    for (int c = 0; c < C; c++) {
        double sg = 0.0, sgx = 0.0;
        for (int t = 0; t < threads; t++) { sg += jobs[t].s1[c]; sgx += jobs[t].s2[c]; }
        sgx *= invstd[c];  /* the sums were of g * (x - mean) */
        dbias[c] = (float)sg;
        dweight[c] = (float)sgx;
        k1[c] = (float)(sg / (double)M);
        k2[c] = (float)(sgx / (double)M);
    }
    run_jobs(dx_job, jobs, threads, M);
    free(mem);
    free(a);
    return 0;
}

/* LayerNorm over the channels of a channels-last (NHWC) tensor, M = N*H*W rows of C channels, fp32 or
 * bf16 in and out (the output in the input's dtype), fp32 arithmetic:
 *
 *     forward:   mean, rstd per row;  y = (x - mean) * rstd * weight + bias
 *     backward:  xhat = (x - mean) * rstd,  g = dy * weight,
 *                dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
 *                dweight = sum over rows of dy * xhat,  dbias = sum of dy
 *
 * The token-mixer's LayerNorm2d is a permute, F.layer_norm and a permute back; under bf16 autocast
 * PyTorch runs layer_norm in fp32, so a cast to fp32 goes before it, its output is fp32, and the 1x1
 * conv after it casts that back: here one pass reads bf16 and writes bf16. Each row (a pixel's C
 * channels) is read twice each way: its sums (of x - x[0], against cancellation), then its output; the
 * sums vectorised by `omp simd` (-fopenmp-simd: reordered fp32 additions, as any vectorised LayerNorm's). dweight and dbias are summed per job in fp32 over BLOCK rows,
 * then into double. Rows are split across threads (common.h's runner). Built by nas/native.py. */
#include "common.h"

#define BLOCK 64  /* rows summed in fp32 before adding into double */
#define MIN_ROWS 64

typedef struct {
    const void *x, *dy;
    void *out;
    const float *weight, *bias;
    float *mean, *rstd;       /* per row */
    long r0, r1;
    int C, bf16;
    float eps;
    float *t1, *t2;           /* C floats each: this block's dweight, dbias sums */
    double *s1, *s2;          /* C doubles each: this job's */
} ln_job_t;

/* One job's rows, for one dtype: read and written in place (no row buffer), fp32 arithmetic. */
#define ROWS(T, SFX)                                                                                     \
    static void ln_forward_##SFX(ln_job_t *j) {                                                          \
        const int C = j->C;                                                                              \
        const float *restrict w = j->weight, *restrict b = j->bias;                                      \
        for (long r = j->r0; r < j->r1; r++) {                                                           \
            const T *restrict x = (const T *)j->x + (size_t)r * C;                                       \
            T *restrict y = (T *)j->out + (size_t)r * C;                                                 \
            float k = ld_##SFX(x), s = 0.0f, v = 0.0f;  /* sums of x - x[0], against cancellation */     \
            _Pragma("omp simd reduction(+ : s, v)")                                                      \
            for (int c = 0; c < C; c++) { float d = ld_##SFX(x + c) - k; s += d; v += d * d; }            \
            float m = s / C, var = v / C - m * m;                                                        \
            float rs = 1.0f / sqrtf((var > 0.0f ? var : 0.0f) + j->eps), shift = k + m;                 \
            for (int c = 0; c < C; c++) st_##SFX(y + c, (ld_##SFX(x + c) - shift) * rs * w[c] + b[c]);   \
            j->mean[r] = shift;                                                                          \
            j->rstd[r] = rs;                                                                             \
        }                                                                                                \
    }                                                                                                    \
    static void ln_backward_##SFX(ln_job_t *j) {                                                         \
        const int C = j->C;                                                                              \
        const float *restrict w = j->weight;                                                             \
        float *restrict t1 = j->t1, *restrict t2 = j->t2;                                                \
        int rows = 0;                                                                                    \
        for (long r = j->r0; r < j->r1; r++) {                                                           \
            const T *restrict x = (const T *)j->x + (size_t)r * C, *restrict dy = (const T *)j->dy + (size_t)r * C; \
            T *restrict dx = (T *)j->out + (size_t)r * C;                                                \
            float m = j->mean[r], rs = j->rstd[r], sg = 0.0f, sgx = 0.0f;                                \
            _Pragma("omp simd reduction(+ : sg, sgx)")                                                   \
            for (int c = 0; c < C; c++) {                                                                \
                float xh = (ld_##SFX(x + c) - m) * rs, d = ld_##SFX(dy + c), g = d * w[c];               \
                sg += g;                                                                                 \
                sgx += g * xh;                                                                           \
                t1[c] += d * xh;                                                                         \
                t2[c] += d;                                                                              \
            }                                                                                            \
            sg /= C; sgx /= C;                                                                           \
            for (int c = 0; c < C; c++) {                                                                \
                float xh = (ld_##SFX(x + c) - m) * rs;                                                   \
                st_##SFX(dx + c, rs * (ld_##SFX(dy + c) * w[c] - sg - xh * sgx));                        \
            }                                                                                            \
            if (++rows == BLOCK || r + 1 == j->r1) {                                                     \
                for (int c = 0; c < C; c++) { j->s1[c] += t1[c]; j->s2[c] += t2[c]; t1[c] = 0.0f; t2[c] = 0.0f; } \
                rows = 0;                                                                                \
            }                                                                                            \
        }                                                                                                \
    }
ROWS(float, f32)
ROWS(uint16_t, bf16)

static void *ln_forward_job(void *arg) {
    ln_job_t *j = arg;
    if (j->bf16) ln_forward_bf16(j); else ln_forward_f32(j);
    return NULL;
}

static void *ln_backward_job(void *arg) {
    ln_job_t *j = arg;
    if (j->bf16) ln_backward_bf16(j); else ln_backward_f32(j);
    return NULL;
}

/* Jobs over M rows, one per thread, each with zeroed buffers; the number of jobs, or 0 if memory ran out. */
static int ln_plan(ln_job_t *jobs, char **mem, long M, int threads, ln_job_t proto) {
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > M / MIN_ROWS) threads = (int)(M / MIN_ROWS);
    if (threads < 1) threads = 1;
    size_t per = (size_t)proto.C * (2 * sizeof(float) + 2 * sizeof(double));
    *mem = calloc((size_t)threads, per);
    if (*mem == NULL) return 0;
    for (int t = 0; t < threads; t++) {
        ln_job_t *j = &jobs[t];
        *j = proto;
        j->r0 = M * t / threads;
        j->r1 = M * (t + 1) / threads;
        j->s1 = (double *)(*mem + per * t);
        j->s2 = j->s1 + proto.C;
        j->t1 = (float *)(j->s2 + proto.C);
        j->t2 = j->t1 + proto.C;
    }
    return threads;
}

/* y like x; mean and rstd: M floats each, for the backward. Returns 0, or -1 if memory ran out. */
int layer_norm_forward(const void *x, void *y, int bf16, long M, int C, const float *weight, const float *bias,
                       double eps, float *mean, float *rstd, int threads) {
    ln_job_t jobs[MAX_THREADS];
    char *mem;
    int n = ln_plan(jobs, &mem, M, threads, (ln_job_t){.x = x, .out = y, .weight = weight, .bias = bias,
                                                         .mean = mean, .rstd = rstd, .C = C, .bf16 = bf16,
                                                         .eps = (float)eps});
    if (n == 0) return -1;
    parallel(n, ln_forward_job, jobs, sizeof(ln_job_t));
    free(mem);
    return 0;
}

/* dx like x, dweight and dbias (C floats), given the forward's mean and rstd. Returns 0, or -1. */
int layer_norm_backward(const void *x, const void *dy, void *dx, int bf16, long M, int C, const float *weight,
                        const float *mean, const float *rstd, float *dweight, float *dbias, int threads) {
    ln_job_t jobs[MAX_THREADS];
    char *mem;
    int n = ln_plan(jobs, &mem, M, threads, (ln_job_t){.x = x, .dy = dy, .out = dx, .weight = weight,
                                                         .mean = (float *)mean, .rstd = (float *)rstd, .C = C,
                                                         .bf16 = bf16});
    if (n == 0) return -1;
    parallel(n, ln_backward_job, jobs, sizeof(ln_job_t));
    for (int c = 0; c < C; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int t = 0; t < n; t++) { s1 += jobs[t].s1[c]; s2 += jobs[t].s2[c]; }
        dweight[c] = (float)s1;
        dbias[c] = (float)s2;
    }
    free(mem);
    return 0;
}

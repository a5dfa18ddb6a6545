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
 * The tensor is read as a flat array whose channel repeats with period C. Every loop runs over spans
 * of P = lcm(C, 16) elements (a few rows), with the per-channel constants laid out P long, so the
 * compiler vectorises it (-O3 -march=native) with no scalar remainder whatever C is (a row of 24
 * channels is a 16-wide vector and 8 left over; 48 elements are three vectors). exp and erf are
 * polynomial approximations written as arithmetic so they vectorise too (common.h). Spans are split
 * across threads (common.h's runner); sums are kept per thread in fp32 over
 * BLOCK spans, then added in double, then folded from P to C. Built and loaded by nas/native.py.
 */
#include "common.h"

#define BLOCK 16        /* spans summed in fp32 before adding into double */
#define VEC 16          /* P is a multiple of this */
#define MAX_PERIOD 4096 /* beyond it, P = C */

typedef struct {
    const void *x, *dy;
    void *out;
    int bf16, act, P;
    size_t e0, e1;                          /* the elements of this job: e0 a multiple of P */
    const float *a, *b, *mean, *invstd;     /* per element of a span (P): scale, shift, or as named */
    const float *k1, *k2;                   /* backward pass 2: dbias / M and dweight / M */
    double *s1, *s2;                        /* per-job sums, P each */
    float *t1, *t2;                         /* per-job fp32 sums of the current block of spans, P each */
} job_t;

/* One span of n <= P elements starting at a channel-0 element, for one activation and dtype. */
#define SPANS(NAME, ACT, T, SFX)                                                                         \
    static inline void NAME##_stats_##SFX(const T *restrict x, const float *restrict k, float *restrict t1, \
                                          float *restrict t2, int n) {                                   \
        for (int i = 0; i < n; i++) { float d = ld_##SFX(x + i) - k[i]; t1[i] += d; t2[i] += d * d; }    \
    }                                                                                                    \
    static inline void NAME##_forward_##SFX(const T *restrict x, T *restrict y, const float *restrict a,   \
                                            const float *restrict b, int n) {                            \
        for (int i = 0; i < n; i++) st_##SFX(y + i, act_f(ACT, ld_##SFX(x + i) * a[i] + b[i]));          \
    }                                                                                                    \
    static inline void NAME##_sums_##SFX(const T *restrict x, const T *restrict dy, T *restrict g,        \
                                         const float *restrict a, const float *restrict b,               \
                                         const float *restrict mean, float *restrict t1,                 \
                                         float *restrict t2, int n) {                                    \
        for (int i = 0; i < n; i++)                                                                      \
            st_##SFX(g + i, ld_##SFX(dy + i) * act_grad(ACT, ld_##SFX(x + i) * a[i] + b[i]));            \
        for (int i = 0; i < n; i++) {  /* a second loop, so that both vectorise */                       \
            float gi = ld_##SFX(g + i);                                                                  \
            t1[i] += gi;                                                                                 \
            t2[i] += gi * (ld_##SFX(x + i) - mean[i]);                                                   \
        }                                                                                                \
    }                                                                                                    \
    static inline void NAME##_dx_##SFX(const T *restrict x, T *restrict dx, const float *restrict a,      \
                                       const float *restrict mean, const float *restrict invstd,         \
                                       const float *restrict k1, const float *restrict k2, int n) {      \
        for (int i = 0; i < n; i++) {  /* dx holds g (pass 1) */                                         \
            float xhat = (ld_##SFX(x + i) - mean[i]) * invstd[i];                                        \
            st_##SFX(dx + i, a[i] * (ld_##SFX(dx + i) - k1[i] - xhat * k2[i]));                          \
        }                                                                                                \
    }                                                                                                    \
    static void NAME##_run_##SFX(job_t *j, int pass) {                                                   \
        const T *x = (const T *)j->x, *dy = (const T *)j->dy;                                            \
        T *out = (T *)j->out;                                                                            \
        int P = j->P, spans = 0;                                                                         \
        if (pass != 1) { memset(j->t1, 0, (size_t)P * sizeof(float)); memset(j->t2, 0, (size_t)P * sizeof(float)); } \
        for (size_t e = j->e0; e < j->e1; e += P) {                                                      \
            int n = j->e1 - e < (size_t)P ? (int)(j->e1 - e) : P;                                        \
            switch (pass) {                                                                              \
            case 0: NAME##_stats_##SFX(x + e, j->a, j->t1, j->t2, n); break;                             \
            case 1: NAME##_forward_##SFX(x + e, out + e, j->a, j->b, n); break;                          \
            case 2: NAME##_sums_##SFX(x + e, dy + e, out + e, j->a, j->b, j->mean, j->t1, j->t2, n); break; \
            default: NAME##_dx_##SFX(x + e, out + e, j->a, j->mean, j->invstd, j->k1, j->k2, n);          \
            }                                                                                            \
            if ((pass == 0 || pass == 2) && (++spans == BLOCK || e + P >= j->e1)) {                      \
                for (int i = 0; i < P; i++) { j->s1[i] += j->t1[i]; j->s2[i] += j->t2[i]; }              \
                memset(j->t1, 0, (size_t)P * sizeof(float));                                            \
                memset(j->t2, 0, (size_t)P * sizeof(float));                                            \
                spans = 0;                                                                               \
            }                                                                                            \
        }                                                                                                \
    }
#define ACTIVATION(NAME, ACT) SPANS(NAME, ACT, float, f32) SPANS(NAME, ACT, uint16_t, bf16)
ACTIVATION(none, ACT_NONE)
ACTIVATION(relu, ACT_RELU)
ACTIVATION(gelu, ACT_GELU)
ACTIVATION(silu, ACT_SILU)

/* passes: 0 statistics, 1 forward, 2 backward sums (g into out), 3 dx */
#define PASS_JOB(PASS)                                                                                   \
    static void *pass##PASS##_job(void *arg) {                                                           \
        job_t *j = arg;                                                                                  \
        int act = PASS == 0 ? ACT_NONE : j->act;                                                         \
        switch (act * 2 + j->bf16) {                                                                     \
        case ACT_RELU * 2: relu_run_f32(j, PASS); break;                                                 \
        case ACT_RELU * 2 + 1: relu_run_bf16(j, PASS); break;                                            \
        case ACT_GELU * 2: gelu_run_f32(j, PASS); break;                                                 \
        case ACT_GELU * 2 + 1: gelu_run_bf16(j, PASS); break;                                            \
        case ACT_SILU * 2: silu_run_f32(j, PASS); break;                                                 \
        case ACT_SILU * 2 + 1: silu_run_bf16(j, PASS); break;                                            \
        case 1: none_run_bf16(j, PASS); break;                                                           \
        default: none_run_f32(j, PASS);                                                                  \
        }                                                                                                \
        return NULL;                                                                                     \
    }
PASS_JOB(0)
PASS_JOB(1)
PASS_JOB(2)
PASS_JOB(3)

static int gcd(int a, int b) { while (b) { int t = a % b; a = b; b = t; } return a; }

/* The span: lcm(C, VEC) elements, or C where that is too long. */
static int period(int C) {
    long p = (long)C / gcd(C, VEC) * VEC;
    return p <= MAX_PERIOD ? (int)p : C;
}

/* Per-channel values laid out over a span of P: out[i] = v[i % C]. */
static void spread(float *out, const float *v, int C, int P) {
    for (int i = 0; i < P; i++) out[i] = v[i % C];
}

/* Per-channel totals from per-span-element sums: out[c] = sum over i % C == c of s[i]. */
static void fold(double *out, const double *s, int C, int P) {
    for (int c = 0; c < C; c++) out[c] = 0.0;
    for (int i = 0; i < P; i++) out[i % C] += s[i];
}

typedef struct {
    job_t jobs[MAX_THREADS];
    int threads;
    char *mem;
} plan_t;

/* Jobs over `total` elements in spans of P, one per thread; each with its sums (zeroed). 0 or -1. */
static int plan(plan_t *p, int threads, size_t total, int P, job_t proto) {
    size_t spans = (total + P - 1) / P;
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if ((size_t)threads > spans / BLOCK) threads = spans / BLOCK > 0 ? (int)(spans / BLOCK) : 1;
    size_t per = 2 * (size_t)P * (sizeof(double) + sizeof(float));
    p->mem = calloc((size_t)threads, per);
    if (p->mem == NULL) return -1;
    p->threads = threads;
    for (int t = 0; t < threads; t++) {
        job_t *j = &p->jobs[t];
        *j = proto;
        j->P = P;
        j->e0 = spans * t / threads * P;
        j->e1 = spans * (t + 1) / threads * P;
        if (j->e1 > total) j->e1 = total;
        j->s1 = (double *)(p->mem + per * t);
        j->s2 = j->s1 + P;
        j->t1 = (float *)(j->s2 + P);
        j->t2 = j->t1 + P;
    }
    return 0;
}

static void run(plan_t *p, void *(*fn)(void *)) { parallel(p->threads, fn, p->jobs, sizeof(job_t)); }

/* The jobs' sums, added over jobs and folded to C channels: into o1, o2 (C doubles each). */
static void totals(plan_t *p, int C, double *o1, double *o2) {
    int P = p->jobs[0].P;
    for (int t = 1; t < p->threads; t++)
        for (int i = 0; i < P; i++) { p->jobs[0].s1[i] += p->jobs[t].s1[i]; p->jobs[0].s2[i] += p->jobs[t].s2[i]; }
    fold(o1, p->jobs[0].s1, C, P);
    fold(o2, p->jobs[0].s2, C, P);
}

/* The forward pass: mean and (biased) var of x's channels out; y = act((x - mean) / sqrt(var + eps) * weight
 * + bias). weight and bias: C floats each. Returns 0, or -1 if memory ran out. */
int bn_act_forward(const void *x, void *y, int bf16, long M, int C, const float *weight, const float *bias,
                   double eps, int act, float *mean, float *var, int threads) {
    int P = period(C);
    float *buf = malloc((3 * (size_t)P + 3 * (size_t)C) * sizeof(float));
    double *sums = malloc(2 * (size_t)C * sizeof(double));
    plan_t p;
    if (buf == NULL || sums == NULL || plan(&p, threads, (size_t)M * C, P,
                                            (job_t){.x = x, .out = y, .bf16 = bf16, .act = act}) != 0) {
        free(buf); free(sums); return -1;
    }
    float *kP = buf, *aP = buf + P, *bP = buf + 2 * P, *k = buf + 3 * P, *a = k + C, *b = a + C;
    for (int c = 0; c < C; c++) k[c] = M > 0 ? load(x, bf16, c) : 0.0f;  /* the first row: a shift against cancellation */
    spread(kP, k, C, P);
    for (int t = 0; t < p.threads; t++) p.jobs[t].a = kP;
    run(&p, pass0_job);
    totals(&p, C, sums, sums + C);
    for (int c = 0; c < C; c++) {
        double m = sums[c] / (double)M, v = sums[C + c] / (double)M - m * m;
        if (v < 0.0) v = 0.0;
        mean[c] = (float)(k[c] + m);
        var[c] = (float)v;
        double inv = 1.0 / sqrt(v + eps);
        a[c] = (float)(weight[c] * inv);
        b[c] = (float)(bias[c] - (k[c] + m) * weight[c] * inv);
    }
    spread(aP, a, C, P);
    spread(bP, b, C, P);
    for (int t = 0; t < p.threads; t++) { p.jobs[t].a = aP; p.jobs[t].b = bP; }
    run(&p, pass1_job);
    free(p.mem); free(buf); free(sums);
    return 0;
}

/* The backward pass, given the forward's mean and var: dx (x's dtype), dweight and dbias (C floats).
 * Returns 0, or -1 if memory ran out. */
int bn_act_backward(const void *x, const void *dy, void *dx, int bf16, long M, int C, const float *weight,
                    const float *bias, const float *mean, const float *var, double eps, int act, float *dweight,
                    float *dbias, int threads) {
    int P = period(C);
    float *buf = malloc((6 * (size_t)P + 6 * (size_t)C) * sizeof(float));
    double *sums = malloc(2 * (size_t)C * sizeof(double));
    plan_t p;
    if (buf == NULL || sums == NULL || plan(&p, threads, (size_t)M * C, P,
                                            (job_t){.x = x, .dy = dy, .out = dx, .bf16 = bf16, .act = act}) != 0) {
        free(buf); free(sums); return -1;
    }
    float *aP = buf, *bP = aP + P, *meanP = bP + P, *invP = meanP + P, *k1P = invP + P, *k2P = k1P + P;
    float *a = k2P + P, *b = a + C, *inv = b + C, *k1 = inv + C, *k2 = k1 + C;
    for (int c = 0; c < C; c++) {
        double i = 1.0 / sqrt((double)var[c] + eps);
        inv[c] = (float)i;
        a[c] = (float)(weight[c] * i);
        b[c] = (float)(bias[c] - mean[c] * weight[c] * i);
    }
    spread(aP, a, C, P);
    spread(bP, b, C, P);
    spread(meanP, mean, C, P);
    spread(invP, inv, C, P);
    for (int t = 0; t < p.threads; t++) {
        job_t *j = &p.jobs[t];
        j->a = aP; j->b = bP; j->mean = meanP; j->invstd = invP; j->k1 = k1P; j->k2 = k2P;
    }
    run(&p, pass2_job);
    totals(&p, C, sums, sums + C);
    for (int c = 0; c < C; c++) {
        double sg = sums[c], sgx = sums[C + c] * inv[c];  /* the sums were of g * (x - mean) */
        dbias[c] = (float)sg;
        dweight[c] = (float)sgx;
        k1[c] = (float)(sg / (double)M);
        k2[c] = (float)(sgx / (double)M);
    }
    spread(k1P, k1, C, P);
    spread(k2P, k2, C, P);
    run(&p, pass3_job);
    free(p.mem); free(buf); free(sums);
    return 0;
}

/* Inference: y = act(x * scale + shift) per channel, BatchNorm with its running statistics folded into
 * scale and shift (C floats each). The forward pass's second pass alone. Returns 0, or -1 if memory ran out. */
int affine_act_forward(const void *x, void *y, int bf16, long M, int C, const float *scale, const float *shift,
                       int act, int threads) {
    int P = period(C);
    float *buf = malloc(2 * (size_t)P * sizeof(float));
    plan_t p;
    if (buf == NULL || plan(&p, threads, (size_t)M * C, P, (job_t){.x = x, .out = y, .bf16 = bf16, .act = act}) != 0) {
        free(buf); return -1;
    }
    spread(buf, scale, C, P);
    spread(buf + P, shift, C, P);
    for (int t = 0; t < p.threads; t++) { p.jobs[t].a = buf; p.jobs[t].b = buf + P; }
    run(&p, pass1_job);
    free(p.mem); free(buf);
    return 0;
}

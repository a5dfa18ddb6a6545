/* The token-mixer's gated feed-forward activation, y = act(a) * b, where a and b are the two halves of
 * the channels of one tensor h (the first 1x1 conv's output, channels-last: M = N*H*W rows of 2C
 * channels, a = row[0:C], b = row[C:2C]); fp32 or bf16 in and out, fp32 arithmetic:
 *
 *     forward:   y[m, c] = act(a[m, c]) * b[m, c]                        (M rows of C)
 *     backward:  dh[m, c] = dy[m, c] * b[m, c] * act'(a[m, c]),  dh[m, C + c] = dy[m, c] * act(a[m, c])
 *
 * In PyTorch the same is a chunk (two strided views), the activation, a multiply, and in the backward
 * the multiply's two products, the activation's gradient and a cat of the halves into h's gradient:
 * six passes over the data where these are one each way, and the backward needs only h saved (not
 * act(a) and b beside it). Rows are split across threads (common.h's runner). Built and loaded by
 * nas/native.py. */
#include "common.h"

typedef struct {
    const void *h, *dy;
    void *out;
    long r0, r1;  /* the rows of this job */
    int C, bf16, act;
} gate_job_t;

#define GATE(NAME, ACT, T, SFX)                                                                          \
    static void NAME##_gate_forward_##SFX(const gate_job_t *j) {                                         \
        const int C = j->C;                                                                              \
        for (long r = j->r0; r < j->r1; r++) {                                                           \
            const T *restrict a = (const T *)j->h + (size_t)r * 2 * C, *restrict b = a + C;              \
            T *restrict y = (T *)j->out + (size_t)r * C;                                                 \
            for (int c = 0; c < C; c++) st_##SFX(y + c, act_f(ACT, ld_##SFX(a + c)) * ld_##SFX(b + c));  \
        }                                                                                                \
    }                                                                                                    \
    static void NAME##_gate_backward_##SFX(const gate_job_t *j) {                                        \
        const int C = j->C;                                                                              \
        for (long r = j->r0; r < j->r1; r++) {                                                           \
            const T *restrict a = (const T *)j->h + (size_t)r * 2 * C, *restrict b = a + C;              \
            const T *restrict dy = (const T *)j->dy + (size_t)r * C;                                     \
            T *restrict da = (T *)j->out + (size_t)r * 2 * C, *restrict db = da + C;                     \
            for (int c = 0; c < C; c++) {                                                                \
                float z = ld_##SFX(a + c), g = ld_##SFX(dy + c);                                         \
                st_##SFX(da + c, g * ld_##SFX(b + c) * act_grad(ACT, z));                                \
                st_##SFX(db + c, g * act_f(ACT, z));                                                     \
            }                                                                                            \
        }                                                                                                \
    }
#define GATES(NAME, ACT) GATE(NAME, ACT, float, f32) GATE(NAME, ACT, uint16_t, bf16)
GATES(none, ACT_NONE)
GATES(relu, ACT_RELU)
GATES(gelu, ACT_GELU)
GATES(silu, ACT_SILU)

#define GATE_JOB(DIR)                                                                                    \
    static void *gate_##DIR##_job(void *arg) {                                                           \
        const gate_job_t *j = arg;                                                                       \
        switch (j->act * 2 + j->bf16) {                                                                  \
        case ACT_RELU * 2: relu_gate_##DIR##_f32(j); break;                                              \
        case ACT_RELU * 2 + 1: relu_gate_##DIR##_bf16(j); break;                                         \
        case ACT_GELU * 2: gelu_gate_##DIR##_f32(j); break;                                              \
        case ACT_GELU * 2 + 1: gelu_gate_##DIR##_bf16(j); break;                                         \
        case ACT_SILU * 2: silu_gate_##DIR##_f32(j); break;                                              \
        case ACT_SILU * 2 + 1: silu_gate_##DIR##_bf16(j); break;                                         \
        case 1: none_gate_##DIR##_bf16(j); break;                                                        \
        default: none_gate_##DIR##_f32(j);                                                               \
        }                                                                                                \
        return NULL;                                                                                     \
    }
GATE_JOB(forward)
GATE_JOB(backward)

#define MIN_ROWS 64  /* rows per thread below which one thread does it all */

static void gate_run(void *(*fn)(void *), gate_job_t proto, long M, int threads) {
    gate_job_t jobs[MAX_THREADS];
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > M / MIN_ROWS) threads = M / MIN_ROWS;
    if (threads < 1) threads = 1;
    for (int t = 0; t < threads; t++) {
        jobs[t] = proto;
        jobs[t].r0 = M * t / threads;
        jobs[t].r1 = M * (t + 1) / threads;
    }
    parallel(threads, fn, jobs, sizeof(gate_job_t));
}

/* y (M rows of C) = act(h[:, :C]) * h[:, C:] for h of M rows of 2C. */
int gated_act_forward(const void *h, void *y, int bf16, long M, int C, int act, int threads) {
    gate_run(gate_forward_job, (gate_job_t){.h = h, .out = y, .C = C, .bf16 = bf16, .act = act}, M, threads);
    return 0;
}

/* dh (M rows of 2C), the gradient of gated_act_forward's h given its output's gradient dy (M rows of C). */
int gated_act_backward(const void *h, const void *dy, void *dh, int bf16, long M, int C, int act, int threads) {
    gate_run(gate_backward_job, (gate_job_t){.h = h, .dy = dy, .out = dh, .C = C, .bf16 = bf16, .act = act}, M,
             threads);
    return 0;
}

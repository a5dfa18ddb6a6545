/* What nas's C kernels share: bf16 <-> fp32, the activations and their derivatives as vectorisable
 * arithmetic (exp and erf by polynomials: erf is Abramowitz & Stegun 7.1.26, |error| < 1.5e-7), and a
 * runner of one job per thread. Included by each kernel's .c file (nas/native.py builds them as one
 * library and hashes this header with them). */
#ifndef NAS_COMMON_H
#define NAS_COMMON_H
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ACT_NONE = 0, ACT_RELU = 1, ACT_GELU = 2, ACT_SILU = 3 };
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
        return 0.5f * z * (1.0f + copysignf(e, z));
    }
    case ACT_SILU: {
        float e = exp_neg(-fabsf(z));                       /* sigmoid without overflow */
        float s = (z >= 0.0f ? 1.0f : e) / (1.0f + e);
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
        return 0.5f * (1.0f + copysignf(e, z)) + z * 0.39894228f * g;
    }
    case ACT_SILU: {
        float e = exp_neg(-fabsf(z));
        float s = (z >= 0.0f ? 1.0f : e) / (1.0f + e);
        return s * (1.0f + z * (1.0f - s));
    }
    default: return 1.0f;
    }
}

static inline float ld_f32(const float *p) { return *p; }
static inline float ld_bf16(const uint16_t *p) { return bf16_to_f32(*p); }
static inline void st_f32(float *p, float v) { *p = v; }
static inline void st_bf16(uint16_t *p, float v) { *p = f32_to_bf16(v); }

/* Run fn on each of n jobs (items, `size` bytes apart). Built with OpenMP (nas/native.py links the libgomp
 * PyTorch has loaded), the jobs go to PyTorch's own thread team, whose threads are still spinning from its
 * last parallel region; threads of our own would share the cores with those spinning ones. Else pthreads,
 * job 0 in this thread. */
static void parallel(int n, void *(*fn)(void *), void *items, size_t size) {
    char *base = items;
#ifdef _OPENMP
    if (n > 1) {
#pragma omp parallel for num_threads(n) schedule(static, 1)
        for (int t = 0; t < n; t++) fn(base + size * t);
        return;
    }
#endif
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 1; t < n; t++) started[t] = pthread_create(&ids[t], NULL, fn, base + size * t) == 0;
    fn(base);
    for (int t = 1; t < n; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else fn(base + size * t);  /* no thread for it: run it here */
    }
}
#endif

// Which instruction set the run-time-dispatched kernels use: the build targets x86-64-v2, and
// the AVX2 + FMA versions of the quantized weight kernels (model/weight_kernels.c), the
// training ops outside BLAS (model/ops_vec.c) and AdamW (optim/adamw.c) are chosen here, once
// per process, so every kernel of a run takes the same path.
#ifndef MEDTUNE_COMMON_CPU_H
#define MEDTUNE_COMMON_CPU_H

// 1 when this CPU has AVX2, FMA and F16C and MEDTUNE_NO_AVX2 is unset (or empty, or "0"); 0
// otherwise, and always on other architectures. MEDTUNE_NO_AVX2=1 forces the portable path,
// to compare the two paths on one machine (docs/training.md#simd-kernels).
int cpu_avx2_fma(void);

#endif

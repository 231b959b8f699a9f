extern "C" __global__ void recur_kernel(
    long long t0, long long t1, long long steps, long long lanes,
    long long *result, const long long *__restrict__ dims,
    double *__restrict__ a0,
    double *__restrict__ a1,
    double *__restrict__ a2,
    long long *__restrict__ a3,
    double *__restrict__ a4) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < lanes;
         i += (long long)blockDim.x * gridDim.x) {
        long long status[1] = {0};
        double s0_0;
        double s0_1 = a4[(t0 + 0) * dims[9] + i];
        long long t = t0;
        for (; t < t1; t++) {
            s0_0 = ((s0_1 - ((a0[0] * s0_1) * a1[0])) + (a2[0] * r_normal((r_u64)(t), (r_u64)(a3[1] * 1 + i), 0ULL, (r_u64)a3[0])));
            a4[(t + 1) * dims[9] + i] = s0_0;
            s0_1 = s0_0;
        }
    }
}

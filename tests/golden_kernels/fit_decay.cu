extern "C" __global__ void recur_kernel(
    long long t0, long long t1, long long steps, long long lanes,
    long long *result, const long long *__restrict__ dims,
    double *__restrict__ a0,
    double *__restrict__ a1,
    double *__restrict__ a2,
    double *__restrict__ a3) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < lanes;
         i += (long long)blockDim.x * gridDim.x) {
        long long status[1] = {0};
        double s0_0;
        double s0_1 = a2[((t0 - 1) & (dims[4] - 1)) * dims[5] + 0];
        double s1_0;
        double s1_1 = a3[((t0 - 1) & (dims[6] - 1)) * dims[7] + 0];
        long long t = t0;
        for (; t < t1; t++) {
            s0_0 = (s0_1 * a0[0]);
            s1_0 = (s1_1 + r_powi_d_2((s0_0 - a1[(t + 0) * dims[3] + 0])));
            s0_1 = s0_0;
            s1_1 = s1_0;
        }
        if (i == 0) a2[((t - 1) & (dims[4] - 1)) * dims[5] + 0] = s0_1;
        if (i == 0) a3[((t - 1) & (dims[6] - 1)) * dims[7] + 0] = s1_1;
    }
}

extern "C" __global__ void recur_kernel(
    long long t0, long long t1, long long steps, long long lanes,
    long long *result, const long long *__restrict__ dims,
    long long *__restrict__ a0,
    long long *__restrict__ a1,
    double *__restrict__ a2) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < lanes;
         i += (long long)blockDim.x * gridDim.x) {
        long long status[1] = {0};
        long long s0_0;
        long long s0_1 = a1[((t0 - 1) & (dims[2] - 1)) * dims[3] + i];
        double s1_0;
        double s1_1 = 0;
        long long t = t0;
        for (; t < t1; t++) {
            s0_0 = r_add(s0_1, ((long long)(((r_powi_d_2(r_uniform((r_u64)(t), (r_u64)(a0[1] * 1 + i), 0ULL, (r_u64)a0[0])) + r_powi_d_2(r_uniform((r_u64)(t), (r_u64)(a0[1] * 1 + i), 1ULL, (r_u64)a0[0]))) < ((double)(INT64_C(1)))))), status);
            if (status[0] != 0) { atomicMin(&result[0], t); break; }
            s1_0 = ((4.0 * ((double)(s0_0))) / ((double)(r_add(t, INT64_C(1), status))));
            if (status[0] != 0) { atomicMin(&result[0], t); break; }
            s0_1 = s0_0;
            s1_1 = s1_0;
        }
        a1[((t - 1) & (dims[2] - 1)) * dims[3] + i] = s0_1;
        if (t > t0) { a2[((t - 1) & (dims[4] - 1)) * dims[5] + i] = s1_1; }
    }
}

extern "C" __global__ void recur_kernel(
    long long t0, long long t1, long long steps, long long lanes,
    long long *result, const long long *__restrict__ dims,
    long long *__restrict__ a0,
    long long *__restrict__ a1) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < lanes;
         i += (long long)blockDim.x * gridDim.x) {
        long long status[1] = {0};
        long long s0_0;
        long long s0_1 = a1[((t0 - 1) & (dims[2] - 1)) * dims[3] + 0];
        long long t = t0;
        for (; t < t1; t++) {
            s0_0 = r_add(s0_1, r_pow(a0[(t + 0) * dims[1] + 0], INT64_C(2), status), status);
            if (status[0] != 0) { atomicMin(&result[0], t); break; }
            s0_1 = s0_0;
        }
        if (i == 0) a1[((t - 1) & (dims[2] - 1)) * dims[3] + 0] = s0_1;
    }
}

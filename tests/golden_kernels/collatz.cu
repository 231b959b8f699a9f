extern "C" __global__ void recur_kernel(
    long long t0, long long t1, long long steps, long long lanes,
    long long *result, const long long *__restrict__ dims,
    long long *__restrict__ a0) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < lanes;
         i += (long long)blockDim.x * gridDim.x) {
        long long status[1] = {0};
        long long s0_0;
        long long s0_1 = a0[(t0 + 0) * dims[1] + 0];
        long long t = t0;
        for (; t < t1; t++) {
            s0_0 = (((r_mod(s0_1, INT64_C(2), status) == INT64_C(0))) ? r_floordiv(s0_1, INT64_C(2), status) : r_add(r_mul(INT64_C(3), s0_1, status), INT64_C(1), status));
            if (status[0] != 0) { atomicMin(&result[0], t); break; }
            if (i == 0) a0[(t + 1) * dims[1] + 0] = s0_0;
            bool stop = (bool)((s0_0 == INT64_C(1)));
            s0_1 = s0_0;
            if (stop) { atomicMin(&result[1], t); t++; break; }
        }
    }
}

extern "C" __global__ void recur_kernel(
    long long t0, long long t1, long long steps, long long lanes,
    long long *result, const long long *__restrict__ dims,
    double *__restrict__ a0,
    double *__restrict__ a1) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < lanes;
         i += (long long)blockDim.x * gridDim.x) {
        long long status[1] = {0};
        double s0_0;
        long long t = t0;
        for (; t < t1; t++) {
            s0_0 = (((a0[(t + 0) * dims[1] + 0] + a0[(t + 1) * dims[1] + 0]) + a0[(t + 2) * dims[1] + 0]) / ((double)(INT64_C(3))));
            if (i == 0) a1[(t + 0) * dims[3] + 0] = s0_0;
        }
    }
}

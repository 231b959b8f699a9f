extern "C" __global__ void recur_kernel(
    long long t0, long long t1, long long steps, long long lanes,
    long long *result, const long long *__restrict__ dims,
    double *__restrict__ a0,
    double *__restrict__ a1,
    double *__restrict__ a2,
    double *__restrict__ a3,
    double *__restrict__ a4,
    double *__restrict__ a5,
    double *__restrict__ a6) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < lanes;
         i += (long long)blockDim.x * gridDim.x) {
        long long status[1] = {0};
        double s0_0;
        double s0_1 = a6[(t0 + 1) * dims[13] + 0];
        double s0_2 = a6[(t0 + 0) * dims[13] + 0];
        long long t = t0;
        for (; t < t1; t++) {
            s0_0 = (((((a0[0] * a1[(t + 2) * dims[3] + 0]) + (a2[0] * a1[(t + 1) * dims[3] + 0])) + (a3[0] * a1[(t + 0) * dims[3] + 0])) - (a4[0] * s0_1)) - (a5[0] * s0_2));
            if (i == 0) a6[(t + 2) * dims[13] + 0] = s0_0;
            s0_2 = s0_1;
            s0_1 = s0_0;
        }
    }
}

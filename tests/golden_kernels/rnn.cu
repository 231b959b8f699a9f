extern "C" __global__ void recur_kernel(
    long long t0, long long t1, long long steps, long long lanes,
    long long *result, const long long *__restrict__ dims,
    double *__restrict__ a0,
    double *__restrict__ a1,
    double *__restrict__ a2,
    double *__restrict__ a3,
    double *__restrict__ a4) {
    __shared__ double previous[3];
    const long long groups = (lanes + 0) / 1;
    for (long long g = blockIdx.x; g < groups; g += gridDim.x) {
        for (long long t = t0; t < t1; t++) {
            for (long long e = threadIdx.x; e < 3; e += blockDim.x) {
                long long row = g * 1 + e / 3;
                previous[e] = row < lanes ? (double)a4[(t + 0) * dims[9] + row * 3 + e % 3] : 0;
            }
            __syncthreads();
            for (long long j = threadIdx.x; j < 3; j += blockDim.x) {
                double acc[1];
                for (int r = 0; r < 1; r++) acc[r] = 0;
#pragma unroll 8
                for (long long k = 0; k < 3; k++) {
                    const double w = a0[k * 3 + j];
                    for (int r = 0; r < 1; r++) acc[r] = acc[r] + previous[r * 3 + k] * w;
                }
                for (int r = 0; r < 1; r++) {
                    long long row = g * 1 + r;
                    if (row >= lanes) break;
                    long long i = row * 3 + j;
                    long long status[1] = {0};
                    double value = tanh(((acc[r] + (a1[i] * a2[(t + 0) * dims[5] + 0])) + a3[i]));
                    a4[(t + 1) * dims[9] + i] = value;
                }
            }
            __syncthreads();
        }
    }
}

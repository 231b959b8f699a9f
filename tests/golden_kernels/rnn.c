int64_t kernel(int64_t t0, int64_t t1, int64_t *status, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    double *restrict a0 = (double *)args[0];
    double *restrict a1 = (double *)args[1];
    double *restrict a2 = (double *)args[2];
    double *restrict a3 = (double *)args[3];
    double *restrict a4 = (double *)args[4];
    double *restrict a5 = (double *)args[5];
    for (int64_t t = t0; t < t1; t++) {
        for (int64_t i0 = 0; i0 < dims[3] - dims[3] % 32; i0 += 32) {
            double sums[32] = {0};
            for (int64_t j = 0; j < dims[0]; j++) {
                const double vj = a2[(t + 0) * dims[5] + j];
                const double *restrict row = a0 + j * dims[3] + i0;
                for (int64_t k = 0; k < 32; k++) sums[k] += row[k] * vj;
            }
            for (int64_t k = 0; k < 32; k++) a1[i0 + k] = sums[k];
        }
        for (int64_t i = dims[3] - dims[3] % 32; i < dims[3]; i++) a1[i] = 0;
        for (int64_t j = 0; j < dims[0]; j++) {
            const double vj = a2[(t + 0) * dims[5] + j];
            const double *restrict row = a0 + j * dims[3];
            for (int64_t i = dims[3] - dims[3] % 32; i < dims[3]; i++) a1[i] += row[i] * vj;
        }
        for (int64_t i = 0; i < dims[5]; i++) {
            a2[(t + 1) * dims[5] + i] = r_tanh_d(((a1[i] + (a3[i] * a4[(t + 0) * dims[9] + 0])) + a5[i]));
        }
    }
    return t1;
}

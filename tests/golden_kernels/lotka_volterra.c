int64_t kernel(int64_t t0, int64_t t1, int64_t *status, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    double *restrict a0 = (double *)args[0];
    double *restrict a1 = (double *)args[1];
    double *restrict a2 = (double *)args[2];
    double *restrict a3 = (double *)args[3];
    double *restrict a4 = (double *)args[4];
    double *restrict a5 = (double *)args[5];
    double *restrict a6 = (double *)args[6];
    for (int64_t t = t0; t < t1; t++) {
        for (int64_t i = 0; i < dims[1]; i++) {
            a0[(t + 1) * dims[1] + i] = (a0[(t + 0) * dims[1] + 0] + ((a1[0] * a0[(t + 0) * dims[1] + 0]) * (a2[0] - (a3[0] * a4[(t + 0) * dims[9] + 0]))));
        }
        for (int64_t i = 0; i < dims[9]; i++) {
            a4[(t + 1) * dims[9] + i] = (a4[(t + 0) * dims[9] + 0] + ((a1[0] * a4[(t + 0) * dims[9] + 0]) * ((a5[0] * a0[(t + 1) * dims[1] + 0]) - a6[0])));
        }
    }
    return t1;
}

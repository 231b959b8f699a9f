int64_t kernel(int64_t t0, int64_t t1, int64_t *result, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    double *restrict a0 = (double *)args[0];
    double *restrict a1 = (double *)args[1];
    double *restrict a2 = (double *)args[2];
    double *restrict a3 = (double *)args[3];
    int64_t t = t0;
    for (int64_t i = 0; i < 1; i++) {
        int64_t status[1] = {0};
        double s0_0;
        double s0_1 = a2[((t0 - 1) & (dims[4] - 1)) * dims[5] + 0];
        double s1_0;
        double s1_1 = a3[((t0 - 1) & (dims[6] - 1)) * dims[7] + 0];
        t = t0;
        for (; t < t1; t++) {
            s0_0 = (s0_1 * a0[0]);
            s1_0 = (s1_1 + (s0_0 / a1[(t) * dims[3] + 0]));
            s0_1 = s0_0;
            s1_1 = s1_0;
        }
        if (i == 0) a2[((t - 1) & (dims[4] - 1)) * dims[5] + 0] = s0_1;
        if (i == 0) a3[((t - 1) & (dims[6] - 1)) * dims[7] + 0] = s1_1;
    }
    return t;
}

int64_t kernel(int64_t t0, int64_t t1, int64_t *result, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    int64_t *restrict a0 = (int64_t *)args[0];
    double *restrict a1 = (double *)args[1];
    int64_t t = t0;
    for (int64_t i = 0; i < 1; i++) {
        int64_t status[1] = {0};
        double s0_0;
        double s0_1 = a1[(t0 + 0) * dims[3] + 0];
        t = t0;
        for (; t < t1; t++) {
            s0_0 = (s0_1 + ((double)(a0[(t + 0) * dims[1] + 0])));
            if (i == 0) a1[(t + 1) * dims[3] + 0] = s0_0;
            s0_1 = s0_0;
        }
    }
    return t;
}

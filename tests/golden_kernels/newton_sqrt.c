int64_t kernel(int64_t t0, int64_t t1, int64_t *result, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    double *restrict a0 = (double *)args[0];
    double *restrict a1 = (double *)args[1];
    double *restrict a2 = (double *)args[2];
    int64_t t = t0;
    for (int64_t i = 0; i < 1; i++) {
        int64_t status[1] = {0};
        double s0_0;
        double s0_1 = a1[(t0 + 0) * dims[3] + 0];
        t = t0;
        for (; t < t1; t++) {
            s0_0 = ((s0_1 + (a0[0] / s0_1)) / ((double)(INT64_C(2))));
            if (i == 0) a1[(t + 1) * dims[3] + 0] = s0_0;
            bool stop = (bool)((fabs((s0_0 - s0_1)) < a2[0]));
            s0_1 = s0_0;
            if (stop) { result[0] = -1; result[1] = t; t++; break; }
        }
    }
    return t;
}

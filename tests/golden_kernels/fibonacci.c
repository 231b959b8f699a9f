int64_t kernel(int64_t t0, int64_t t1, int64_t *result, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    int64_t *restrict a0 = (int64_t *)args[0];
    int64_t t = t0;
    for (int64_t i = 0; i < 1; i++) {
        int64_t status[1] = {0};
        int64_t s0_0;
        int64_t s0_1 = a0[(t0 + 1) * dims[1] + 0];
        int64_t s0_2 = a0[(t0 + 0) * dims[1] + 0];
        t = t0;
        for (; t < t1; t++) {
            s0_0 = r_add(s0_1, s0_2, status);
            if (status[0] != 0) { result[0] = 1; result[1] = t; return t; }
            if (i == 0) a0[(t + 2) * dims[1] + 0] = s0_0;
            s0_2 = s0_1;
            s0_1 = s0_0;
        }
    }
    return t;
}

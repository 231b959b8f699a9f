int64_t kernel(int64_t t0, int64_t t1, int64_t *status, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    double *restrict a0 = (double *)args[0];
    int64_t *restrict a1 = (int64_t *)args[1];
    for (int64_t t = t0; t < t1; t++) {
        for (int64_t i = 0; i < dims[1]; i++) {
            a0[(t + 1) * dims[1] + i] = (a0[(t + 0) * dims[1] + 0] + ((double)(a1[(t + 0) * dims[3] + 0])));
        }
    }
    return t1;
}

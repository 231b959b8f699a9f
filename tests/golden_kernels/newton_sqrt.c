int64_t kernel(int64_t t0, int64_t t1, int64_t *status, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    double *restrict a0 = (double *)args[0];
    double *restrict a1 = (double *)args[1];
    double *restrict a2 = (double *)args[2];
    for (int64_t t = t0; t < t1; t++) {
        for (int64_t i = 0; i < dims[1]; i++) {
            a0[(t + 1) * dims[1] + i] = ((a0[(t + 0) * dims[1] + 0] + (a1[0] / a0[(t + 0) * dims[1] + 0])) / ((double)(INT64_C(2))));
        }
        bool stop = (bool)((fabs((a0[(t + 1) * dims[1] + 0] - a0[(t + 0) * dims[1] + 0])) < a2[0]));
        if (stop) { status[0] = -1; status[1] = t; return t + 1; }
    }
    return t1;
}

int64_t kernel(int64_t t0, int64_t t1, int64_t *status, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    int64_t *restrict a0 = (int64_t *)args[0];
    for (int64_t t = t0; t < t1; t++) {
        for (int64_t i = 0; i < dims[1]; i++) {
            a0[(t + 1) * dims[1] + i] = (((r_mod(a0[(t + 0) * dims[1] + 0], INT64_C(2), status) == INT64_C(0))) ? r_floordiv(a0[(t + 0) * dims[1] + 0], INT64_C(2), status) : r_add(r_mul(INT64_C(3), a0[(t + 0) * dims[1] + 0], status), INT64_C(1), status));
            if (status[0] != 0) { status[1] = t; return t; }
        }
        bool stop = (bool)((a0[(t + 1) * dims[1] + 0] == INT64_C(1)));
        if (stop) { status[0] = -1; status[1] = t; return t + 1; }
    }
    return t1;
}

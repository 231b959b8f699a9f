int64_t kernel(int64_t t0, int64_t t1, int64_t *result, int64_t steps,
               void **args, const int64_t *dims) {
    (void)steps; (void)dims;
    double *restrict a0 = (double *)args[0];
    double *restrict a1 = (double *)args[1];
    int64_t t = t0;
    for (int64_t i0 = 0; i0 < dims[3]; i0 += 64) {
        const int64_t count = dims[3] - i0 < 64 ? dims[3] - i0 : 64;
        double p0[64];
        for (int64_t ln = 0; ln < count; ln++) {
            const int64_t i = i0 + ln;
            p0[ln] = a0[i];
        }
        double s0_0[64], s0_1[64];
        for (int64_t ln = 0; ln < count; ln++) {
            const int64_t i = i0 + ln;
            s0_1[ln] = a1[(t0 + 0) * dims[3] + i];
        }
        t = t0;
        for (; t < t1; t++) {
            r_i64 bad = 0;
            for (int64_t ln = 0; ln < count; ln++) {
                const int64_t i = i0 + ln;
                int64_t status[1] = {0};
                s0_0[ln] = ((p0[ln] * s0_1[ln]) * (((double)(INT64_C(1))) - s0_1[ln]));
                a1[(t + 1) * dims[3] + i] = s0_0[ln];
                s0_1[ln] = s0_0[ln];
            }
            if (bad) { result[0] = 1; result[1] = t; return t; }
        }
    }
    return t;
}

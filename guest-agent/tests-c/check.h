// check(): the C tests' shared assertion. A failed check is printed and counted in `failures`;
// the test's main() exits non-zero when any failed.
#ifndef SWIFTKATA_TESTS_CHECK_H
#define SWIFTKATA_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int failures;

static void check(int ok, const char *fmt, ...) {
    if (ok) return;
    failures++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    check failed: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

#endif

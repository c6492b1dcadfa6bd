#ifndef BUZON_TESTS_CHECK_H
#define BUZON_TESTS_CHECK_H

#include <stdio.h>

/*
 * The check of the table-driven unit tests: CHECK(cond, printf-args) counts
 * a failure and says where and why; main() ends with a non-zero exit when
 * failures is not 0. One copy per test program (this header defines it).
 */
static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		failures++; \
		printf("FAIL %s:%d: ", __FILE__, __LINE__); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} \
} while (0)

#endif

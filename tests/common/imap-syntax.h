#ifndef BUZON_TESTS_IMAP_SYNTAX_H
#define BUZON_TESTS_IMAP_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Lexical check of an IMAP response fragment, for tests and fuzzers:
 * balanced parentheses, NIL, numbers, quoted strings with only \" and \\
 * escapes and no CR, LF, NUL or 8-bit, literals with exactly {n} bytes and
 * no NUL; tokens separated by a space or a parenthesis (")(" joins the
 * bodies of a multipart).
 */
bool imap_syntax_ok(const char *s, size_t n);

#endif

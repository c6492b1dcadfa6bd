/*
 * Fuzz target for modified UTF-7 (imap/imap-utf7.c).
 *
 * The input is taken both ways. As mUTF-7: when it decodes, the result is
 * valid UTF-8 and encodes back to exactly the input (only canonical forms
 * are accepted). As UTF-8: when it encodes, the result is printable
 * US-ASCII, is accepted by the decoder and decodes back to the input.
 * A failure to encode must mean the input is not valid UTF-8 or has NUL.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap-utf7.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(msg) do { fprintf(stderr, "fuzz-imap-utf7: %s\n", (msg)); abort(); } while (0)

static int valid_utf8(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = imap_utf8_char_len(s + i, len - i);

		if (n == 0 || s[i] == '\0')
			return 0;
		i += n;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct buf d = BUF_INIT(0), e = BUF_INIT(0), d2 = BUF_INIT(0);

	if (imap_utf7_to_utf8(s, size, &d) == 0) {
		if (!valid_utf8(d.data ? d.data : "", d.len))
			FAIL("decoded to invalid UTF-8");
		if (imap_utf8_to_utf7(d.data ? d.data : "", d.len, &e) != 0)
			FAIL("decoded text does not encode");
		if (e.len != size || (size && memcmp(e.data, s, size) != 0))
			FAIL("accepted a non-canonical form");
	} else if (d.len != 0) {
		FAIL("failed decode left output");
	}
	buf_reset(&e);
	if (imap_utf8_to_utf7(s, size, &e) == 0) {
		if (!valid_utf8(s, size))
			FAIL("encoded invalid UTF-8");
		for (size_t i = 0; i < e.len; i++)
			if (e.data[i] < 0x20 || e.data[i] > 0x7e)
				FAIL("encoding is not printable US-ASCII");
		if (imap_utf7_to_utf8(e.data ? e.data : "", e.len, &d2) != 0)
			FAIL("encoding is refused by the decoder");
		if (d2.len != size || (size && memcmp(d2.data, s, size) != 0))
			FAIL("round trip differs");
	} else if (valid_utf8(s, size)) {
		FAIL("valid UTF-8 not encoded");
	}
	buf_release(&d);
	buf_release(&e);
	buf_release(&d2);
	return 0;
}

/*
 * Real-world-shaped messages for tests/unit/test-mime.c,
 * tests/unit/test-imap-envelope.c and the seeds of tests/fuzz/fuzz-mime.c
 * (tests/fuzz/corpus/mime/ holds them as files, plus CRLF copies).
 * Stored form: LF line ends, as in the Maildir. The expected answers live
 * in the tests, derived by hand from RFC 3501 (see the comments there).
 */
#ifndef BUZON_TESTS_MIME_CORPUS_H
#define BUZON_TESTS_MIME_CORPUS_H

struct corpus_msg {
	const char *name;
	const char *data;
};

/* Thunderbird-like single text part, encoded-word subject, comments in Cc. */
#define CORPUS_PLAIN \
	"Return-Path: <alice@example.org>\n" \
	"Received: from mail.example.org (mail.example.org [192.0.2.1])\n" \
	"\tby mx.example.com with ESMTPS id 4F1A2B3C\n" \
	"\tfor <bob@example.com>; Tue, 03 Mar 2026 10:15:02 +0100\n" \
	"Message-ID: <c0ffee01@example.org>\n" \
	"Date: Tue, 3 Mar 2026 10:15:00 +0100\n" \
	"MIME-Version: 1.0\n" \
	"User-Agent: Mozilla Thunderbird\n" \
	"From: Alice Example <alice@example.org>\n" \
	"To: bob@example.com, \"Carol, Q.\" <carol@example.net>\n" \
	"Cc: (team) dave@example.com (Dave D.)\n" \
	"Subject: =?UTF-8?Q?Caf=C3=A9_meeting?= tomorrow\n" \
	"In-Reply-To: <beef02@example.com>\n" \
	"Content-Type: text/plain; charset=UTF-8; format=flowed\n" \
	"Content-Transfer-Encoding: 8bit\n" \
	"\n" \
	"Hi Bob,\n" \
	"\n" \
	"See you at the caf\xc3\xa9.\n" \
	"-- \n" \
	"Alice\n"

/* multipart/alternative inside multipart/mixed, a PDF with an RFC 2231 name. */
#define CORPUS_MIXED_ALT \
	"From: =?ISO-8859-1?Q?M=FCller=2C_J=F6rg?= <joerg@example.de>\n" \
	"To: team@example.com\n" \
	"Subject: Quarterly report\n" \
	"Date: Wed, 4 Mar 2026 08:00:00 +0000\n" \
	"Message-ID: <report.1@example.de>\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/mixed; boundary=\"----=_Part_0_1234.5678\"\n" \
	"\n" \
	"This is a multi-part message in MIME format.\n" \
	"------=_Part_0_1234.5678\n" \
	"Content-Type: multipart/alternative; boundary=alt-boundary-42\n" \
	"\n" \
	"--alt-boundary-42\n" \
	"Content-Type: text/plain; charset=iso-8859-1\n" \
	"Content-Transfer-Encoding: quoted-printable\n" \
	"\n" \
	"Gr=FC=DFe,\n" \
	"the report is attached.\n" \
	"--alt-boundary-42\n" \
	"Content-Type: text/html; charset=iso-8859-1\n" \
	"Content-Transfer-Encoding: quoted-printable\n" \
	"\n" \
	"<p>Gr=FC=DFe,<br>the report is attached.</p>\n" \
	"--alt-boundary-42--\n" \
	"\n" \
	"------=_Part_0_1234.5678\n" \
	"Content-Type: application/pdf; name=\"=?UTF-8?B?UsOpc3Vtw6kucGRm?=\"\n" \
	"Content-Transfer-Encoding: base64\n" \
	"Content-Disposition: attachment; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf\n" \
	"\n" \
	"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\n" \
	"ZW5kc3RyZWFtCmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\n" \
	"------=_Part_0_1234.5678--\n"

/* A forwarded message (message/rfc822) with its own multipart; groups, routes. */
#define CORPUS_FORWARD \
	"From: Bob <bob@example.com>\n" \
	"To: Alice <alice@example.org>\n" \
	"Subject: Fwd: Lunch\n" \
	"Date: Thu, 5 Mar 2026 12:00:00 -0500\n" \
	"Message-ID: <fwd-7@example.com>\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/mixed; boundary=\"outer\"\n" \
	"\n" \
	"--outer\n" \
	"Content-Type: text/plain; charset=us-ascii\n" \
	"\n" \
	"See below.\n" \
	"\n" \
	"--outer\n" \
	"Content-Type: message/rfc822\n" \
	"Content-Description: Forwarded message\n" \
	"Content-Disposition: inline\n" \
	"\n" \
	"From: Carol <carol@example.net>\n" \
	"To: Lunch group: bob@example.com, \"Dave\" <dave@example.com>;, eve@example.com\n" \
	"Reply-To: <@relay.example.net,@gw.example.net:carol@example.net>\n" \
	"Sender: carol@example.net (Carol's phone)\n" \
	"Subject: Lunch\n" \
	"Date: Wed, 4 Mar 2026 11:00:00 -0500\n" \
	"Message-ID: <lunch@example.net>\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/alternative; boundary=\"inner\"\n" \
	"\n" \
	"--inner\n" \
	"Content-Type: text/plain\n" \
	"\n" \
	"Noon?\n" \
	"--inner\n" \
	"Content-Type: text/html\n" \
	"\n" \
	"<b>Noon?</b>\n" \
	"--inner--\n" \
	"\n" \
	"--outer--\n"

/* Outlook-style: RFC 2231 continuations, encoded-word name, every Content-* field. */
#define CORPUS_OUTLOOK \
	"From: \"Sales\" <sales@example.com>\n" \
	"To: customer@example.org\n" \
	"Subject: =?iso-8859-1?Q?Angebot_f=FCr_Sie?=\n" \
	"Date: Fri, 6 Mar 2026 09:30:00 +0100\n" \
	"Message-ID: <offer-99@example.com>\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/mixed;\n" \
	"\tboundary=\"_004_OUTLOOK_\"\n" \
	"Content-Language: de-DE\n" \
	"\n" \
	"--_004_OUTLOOK_\n" \
	"Content-Type: text/plain; charset=\"utf-8\"\n" \
	"Content-Transfer-Encoding: base64\n" \
	"\n" \
	"QW5nZWJvdCBhbmJlaS4K\n" \
	"--_004_OUTLOOK_\n" \
	"Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet;\n" \
	"\tname=\"=?utf-8?B?UHJlaXNsaXN0ZSAyMDI2IOKAkyBFbnR3dXJmLnhsc3g=?=\"\n" \
	"Content-Description: =?utf-8?B?UHJlaXNsaXN0ZSAyMDI2IOKAkyBFbnR3dXJmLnhsc3g=?=\n" \
	"Content-Disposition: attachment;\n" \
	"\tfilename*0*=utf-8''Preisliste%202026%20%E2%80%93%20;\n" \
	"\tfilename*1*=Entwurf.xlsx;\n" \
	"\tsize=12; creation-date=\"Fri, 06 Mar 2026 08:00:00 GMT\"\n" \
	"Content-ID: <part1.ABC@example.com>\n" \
	"Content-Location: Preisliste.xlsx\n" \
	"Content-MD5: rL0Y20zC+Fzt72VPzMSk2A==\n" \
	"Content-Transfer-Encoding: base64\n" \
	"\n" \
	"UEsDBBQABgAIAAAAIQA=\n" \
	"--_004_OUTLOOK_--\n"

/* multipart/mixed without a boundary parameter. */
#define CORPUS_NO_BOUNDARY \
	"From: a@example.com\n" \
	"Subject: no boundary\n" \
	"Content-Type: multipart/mixed\n" \
	"\n" \
	"--xyz\n" \
	"Content-Type: text/plain\n" \
	"\n" \
	"hi\n" \
	"--xyz--\n"

/* Neither closing delimiter ever comes; an outer delimiter closes the inner multipart. */
#define CORPUS_UNTERMINATED \
	"From: a@example.com\n" \
	"Subject: unterminated\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/mixed; boundary=\"A\"\n" \
	"\n" \
	"--A\n" \
	"Content-Type: multipart/alternative; boundary=\"B\"\n" \
	"\n" \
	"--B\n" \
	"Content-Type: text/plain\n" \
	"\n" \
	"one\n" \
	"--B\n" \
	"Content-Type: text/html\n" \
	"\n" \
	"<i>two</i>\n" \
	"--A\n" \
	"Content-Type: text/plain\n" \
	"\n" \
	"three\n"

/* Lines without a colon, a leading continuation, broken parameters. */
#define CORPUS_GARBAGE \
	" leading continuation\n" \
	"From: a@example.com\n" \
	"This line has no colon\n" \
	" continuation of garbage\n" \
	"Subject: garbage around\n" \
	"X-Weird:no-space\n" \
	":empty-name\n" \
	"Content-Type: text/plain; charset=us-ascii; ; =bad; name; foo=\"unterminated\n" \
	"\n" \
	"body\n"

/* A header and no body: no empty line, no final line break. */
#define CORPUS_HEADER_ONLY \
	"From: a@example.com\n" \
	"Subject: no body"

/* multipart/digest: parts without Content-Type are message/rfc822. */
#define CORPUS_DIGEST \
	"From: list@example.com\n" \
	"Subject: Digest\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/digest; boundary=\"d\"\n" \
	"\n" \
	"--d\n" \
	"\n" \
	"From: x@example.com\n" \
	"Subject: first\n" \
	"\n" \
	"First.\n" \
	"\n" \
	"--d\n" \
	"Content-Type: text/plain\n" \
	"\n" \
	"Not a message.\n" \
	"\n" \
	"--d--\n"

/* Raw UTF-8 in headers (RFC 6532 style), and an ISO-2022-JP and Shift_JIS subject elsewhere. */
#define CORPUS_8BIT \
	"From: J\xc3\xb6rg M\xc3\xbcller <joerg@example.de>\n" \
	"To: \"Zo\xc3\xab\" <zoe@example.com>\n" \
	"Subject: Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\n" \
	"Date: Sat, 7 Mar 2026 10:00:00 +0100\n" \
	"Content-Type: text/plain; charset=utf-8\n" \
	"Content-Transfer-Encoding: 8bit\n" \
	"\n" \
	"Gr\xc3\xbc\xc3\x9f" "e!\n"

/* Japanese: Shift_JIS encoded word, body in Shift_JIS. */
#define CORPUS_SJIS \
	"From: =?Shift_JIS?B?k/qWe4zq?= <taro@example.jp>\n" \
	"To: hanako@example.jp\n" \
	"Subject: =?Shift_JIS?B?k/qWe4zqgsyMj5a8?=\n" \
	"Content-Type: text/plain; charset=Shift_JIS\n" \
	"Content-Transfer-Encoding: 8bit\n" \
	"\n" \
	"\x93\xfa\x96{\x8c\xea\n"

/* message/rfc822 whose message has no body, and a Content-Type in odd case. */
#define CORPUS_RFC822_EMPTY \
	"Subject: outer\n" \
	"Content-Type: Message/RFC822\n" \
	"\n" \
	"Subject: inner only header\n"

/*
 * The features of the message in Dovecot's src/lib-imap/test-imap-bodystructure.c
 * (a folded quoted boundary, an escaped quote in a parameter, every Content-*
 * field, an invalid encoding, preamble and epilogue at both levels), in our
 * own words, so that our answer can be set beside Dovecot's rules.
 */
#define CORPUS_DOVECOT_SHAPED \
	"From: sender@example.org\n" \
	"Date: Mon, 2 Mar 2026 09:00:00 +0000\n" \
	"Mime-Version: 1.0\n" \
	"Content-Type: multipart/mixed; boundary=\"split\n" \
	" here\"\n" \
	"\n" \
	"Preamble text\n" \
	"\n" \
	"--split here\n" \
	"Content-Type: text/x-custom; charset=us-ascii; note=\"say \\\"hi\\\"\"\n" \
	"Content-ID: <one@example.org>\n" \
	"Content-MD5: MTIzNDU2Nzg5MDEyMzQ1Ng==\n" \
	"Content-Disposition: inline; size=5\n" \
	"Content-Description: first part\n" \
	"Content-Language: en, de\n" \
	"Content-Location: http://example.org/one.txt\n" \
	"\n" \
	"hello\n" \
	"\n" \
	"--split here\n" \
	"Content-Type: message/rfc822\n" \
	"\n" \
	"From: inner@example.org\n" \
	"To: a@example.org, b@example.org\n" \
	"Date: Mon, 2 Mar 2026 08:00:00 +0000\n" \
	"Subject: inner\n" \
	"Content-Type: multipart/alternative; boundary=\"alt\"\n" \
	"\n" \
	"Inner preamble\n" \
	"--alt\n" \
	"Content-Type: text/html\n" \
	"Content-Transfer-Encoding: 8bit\n" \
	"\n" \
	"<p>hi</p>\n" \
	"\n" \
	"--alt\n" \
	"Content-Type: text/plain\n" \
	"Content-Transfer-Encoding: ?bogus\n" \
	"\n" \
	"hi there\n" \
	"\n" \
	"--alt--\n" \
	"Inner epilogue\n" \
	"\n" \
	"--split here--\n" \
	"Epilogue\n"

static const struct corpus_msg corpus[] = {
	{ "plain", CORPUS_PLAIN },
	{ "mixed-alt", CORPUS_MIXED_ALT },
	{ "forward", CORPUS_FORWARD },
	{ "outlook", CORPUS_OUTLOOK },
	{ "no-boundary", CORPUS_NO_BOUNDARY },
	{ "unterminated", CORPUS_UNTERMINATED },
	{ "garbage", CORPUS_GARBAGE },
	{ "header-only", CORPUS_HEADER_ONLY },
	{ "digest", CORPUS_DIGEST },
	{ "8bit", CORPUS_8BIT },
	{ "sjis", CORPUS_SJIS },
	{ "rfc822-empty", CORPUS_RFC822_EMPTY },
	{ "dovecot-shaped", CORPUS_DOVECOT_SHAPED },
	{ "empty", "" },
};

#endif

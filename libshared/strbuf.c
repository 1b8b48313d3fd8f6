/* The growable string and JSON string escaping both PostgreSQL workers build their text with. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

void dc_buf_reset(struct dc_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->p)
		b->p[0] = '\0';
}

void dc_buf_free(struct dc_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Room for n more bytes and the NUL; false (and oom set) when there is none. */
static bool reserve(struct dc_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (b->oom)
		return false;
	if (n > SIZE_MAX - b->len - 1) {
		b->oom = true;
		return false;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void dc_buf_add(struct dc_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	if (n) /* s may be NULL when n is 0 */
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void dc_buf_str(struct dc_buf *b, const char *s)
{
	dc_buf_add(b, s, strlen(s));
}

void dc_buf_printf(struct dc_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes, s[0] >= 0x80), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned min, cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2, cp = s[0] & 0x1fu, min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3, cp = s[0] & 0x0fu, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4, cp = s[0] & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t dc_utf8_len(const void *s, size_t n)
{
	return n > 0 ? utf8_len(s, n) : 0;
}

bool dc_utf8_valid(const void *s, size_t n, size_t *bad)
{
	const unsigned char *u = s;
	size_t l;

	for (size_t i = 0; i < n;) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if ((l = utf8_len(u + i, n - i)) == 0) {
			if (bad)
				*bad = i;
			return false;
		}
		i += l;
	}
	return true;
}

/* Appends the escape for byte c (known to need one); room was reserved. */
static void put_escape(struct dc_buf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	static const char named[] = {
		['"'] = '"', ['\\'] = '\\', ['\n'] = 'n', ['\t'] = 't', ['\r'] = 'r'};
	char *o = b->p + b->len;

	o[0] = '\\';
	if (c < sizeof(named) && named[c]) {
		o[1] = named[c];
		b->len += 2;
	} else if (c < 0x20) {
		memcpy(o + 1, "u00", 3);
		o[4] = hex[c >> 4];
		o[5] = hex[c & 15];
		b->len += 6;
	} else { /* a byte that starts no valid UTF-8 sequence */
		memcpy(o + 1, "ufffd", 5);
		b->len += 6;
	}
}

void dc_buf_json_str(struct dc_buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, from = 0; /* u[from..i) is copied as it is */

	/* At most 6 output bytes per input byte: one reservation keeps the loop free of checks. */
	if (n > (SIZE_MAX - 2) / 6) {
		b->oom = true;
		return;
	}
	if (!reserve(b, n * 6 + 2))
		return;
	b->p[b->len++] = '"';
	while (i < n) {
		unsigned char c = u[i];
		size_t l;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80 && (l = utf8_len(u + i, n - i)) > 0) {
			i += l;
			continue;
		}
		memcpy(b->p + b->len, s + from, i - from);
		b->len += i - from;
		put_escape(b, c);
		from = ++i;
	}
	if (i > from) /* an empty string may come as NULL */
		memcpy(b->p + b->len, s + from, i - from);
	b->len += i - from;
	b->p[b->len++] = '"';
	b->p[b->len] = '\0';
}

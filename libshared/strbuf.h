/* A growable NUL-terminated string with sticky out-of-memory, and JSON string escaping. */
#ifndef DC_STRBUF_H
#define DC_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Zero-initialise it ({0}). After an allocation failure oom stays set and
 * every append is a no-op, so a caller builds the whole text and checks oom
 * once at the end. Once anything was appended (even 0 bytes) and oom is
 * clear, p is a NUL-terminated string of len bytes.
 */
struct dc_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* Empties b and clears oom, keeping its memory for reuse. */
void dc_buf_reset(struct dc_buf *b);
/* Releases b's memory and leaves it zeroed, ready for reuse. */
void dc_buf_free(struct dc_buf *b);
void dc_buf_add(struct dc_buf *b, const char *s, size_t n);
void dc_buf_str(struct dc_buf *b, const char *s);
void dc_buf_printf(struct dc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * The n bytes at s as a JSON string literal, quotes included: '"' and '\\'
 * escaped, \n \t \r by name, other control characters as \u00XX. Valid
 * UTF-8 passes through; every byte that does not start a valid sequence
 * (stray continuation, overlong form, surrogate, above U+10FFFF, truncated)
 * becomes \ufffd, so the result is always valid JSON.
 */
void dc_buf_json_str(struct dc_buf *b, const char *s, size_t n);

/*
 * Whether the n bytes at s are valid UTF-8 (the rules above). When not and
 * bad is not NULL, *bad is the offset of the first byte that is not.
 */
bool dc_utf8_valid(const void *s, size_t n, size_t *bad);

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at s (at most n), 0 when there is none. */
size_t dc_utf8_len(const void *s, size_t n);

#endif

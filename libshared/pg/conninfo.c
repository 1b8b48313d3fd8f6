/* The conninfo both PostgreSQL workers check at load time and print, password masked, in logs. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <string.h>

#include "pg/conninfo.h"
#include "strbuf.h"

/*
 * libpq's message, on one line, into out (whylen > 0). libpq quotes the
 * words it could not parse, and a malformed conninfo may have its password
 * among them: only an unknown option's name is kept.
 */
static void redact(const char *msg, char *out, size_t len)
{
	bool keep = strncmp(msg, "invalid connection option", 25) == 0;
	size_t n = 0;

	for (const char *r = msg; *r && *r != '\n' && n + 5 < len; r++) {
		out[n++] = *r;
		if (*r == '"' && !keep) {
			const char *close = strchr(r + 1, '"');

			if (!close)
				break;
			memcpy(out + n, "...\"", 4);
			n += 4;
			r = close;
		}
	}
	out[n] = '\0';
}

int dc_pg_conninfo_mask(const char *conninfo, char **masked, char *why, size_t whylen)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	struct dc_buf b = {0};

	*masked = NULL;
	if (whylen)
		why[0] = '\0';
	if (!opts) {
		/* No message at all: libpq ran out of memory. */
		if (!err)
			return -ENOMEM;
		if (whylen)
			redact(err, why, whylen);
		PQfreemem(err);
		return -EINVAL;
	}
	dc_buf_add(&b, "", 0);
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || !*o->val)
			continue;
		if (b.len)
			dc_buf_str(&b, " ");
		/* libpq marks secrets with "*" in dispchar: password, and whatever comes next. */
		dc_buf_printf(&b, "%s=%s", o->keyword,
			      o->dispchar && o->dispchar[0] == '*' ? "****" : o->val);
	}
	PQconninfoFree(opts);
	if (b.oom) {
		dc_buf_free(&b);
		return -ENOMEM;
	}
	*masked = b.p;
	return 0;
}

/* A libpq conninfo string checked without connecting, and the copy of it logs may show. */
#ifndef DC_PG_CONNINFO_H
#define DC_PG_CONNINFO_H

#include <stddef.h>

/*
 * Parses conninfo with libpq's own parser (no I/O). On success *masked is a
 * malloc'd "keyword=value ..." of every option conninfo sets, in libpq's
 * order, each secret one (libpq marks password and sslpassword) shown as
 * "****". Returns 0; -EINVAL when libpq rejects it, its reason in why on one
 * line with the words it quotes from conninfo replaced by "..." (one may be
 * the password) except an unknown option's name; -ENOMEM. *masked is NULL
 * on failure.
 */
int dc_pg_conninfo_mask(const char *conninfo, char **masked, char *why, size_t whylen);

#endif

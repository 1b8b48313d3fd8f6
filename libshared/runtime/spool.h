/*
 * A source's write-ahead spool: the runtime appends every record it accepts
 * to one file before dc_rt_submit returns and records how far Danube has
 * acknowledged, so a killed worker replays the rest at its next start.
 */
#ifndef DC_RUNTIME_SPOOL_H
#define DC_RUNTIME_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "danube/client.h"

/* One record as spooled; the strings and payload belong to the caller (append) or the spool
 * (replay). */
struct dc_spool_rec {
	uint64_t seq; /* assigned by dc_spool_append, increasing */
	const char *topic;
	const char *routing_key; /* NULL: none */
	const struct dn_attr *attrs;
	size_t nattrs;
	const void *payload;
	size_t len;
};

struct dc_spool_opts {
	bool fsync; /* fdatasync every append: survives a power loss, costs a disk flush each */
	uint64_t compact_bytes; /* compact once the committed prefix is this large; 0 = 4 MiB */
};

struct dc_spool;

/*
 * Opens (creates, mode 0600) the spool at path and locks it against a second
 * process. A torn or corrupt tail is truncated with a warning; the committed
 * prefix is compacted away at once. Returns 0, -EBUSY (locked by another
 * process), -EINVAL (not a spool file), or another -errno.
 */
int dc_spool_open(const char *path, const struct dc_spool_opts *opts, struct dc_spool **out);

/*
 * Calls fn for every record not committed, in append order, before any new
 * append; rec is valid during the call only. Stops at the first non-zero
 * return of fn and returns it; else 0, or -errno on a read error.
 */
typedef int (*dc_spool_replay_fn)(void *arg, const struct dc_spool_rec *rec);
int dc_spool_replay(struct dc_spool *sp, dc_spool_replay_fn fn, void *arg);

/*
 * Appends rec and sets rec->seq. On a write error (-errno) the file is left
 * as before and rec->seq is still set: the caller may keep the record in
 * memory and commit it in order like any other.
 */
int dc_spool_append(struct dc_spool *sp, struct dc_spool_rec *rec);

/*
 * Every record up to and including seq is acknowledged: records the
 * watermark (not synced: losing it only replays duplicates) and compacts
 * the file when the committed prefix is large. Returns 0 or -errno.
 */
int dc_spool_commit(struct dc_spool *sp, uint64_t seq);

/* The file's size in bytes, and how many appended records are not committed. */
uint64_t dc_spool_bytes(const struct dc_spool *sp);
size_t dc_spool_pending(const struct dc_spool *sp);

void dc_spool_close(struct dc_spool *sp);

#endif

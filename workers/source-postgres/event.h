/*
 * One row change as the JSON event source-postgres publishes, its routing key
 * and its Danube topic: pure text building, no I/O.
 */
#ifndef SPG_EVENT_H
#define SPG_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgoutput.h"
#include "strbuf.h"

/* The transaction a change belongs to, from its Begin message. */
struct spg_txn {
	uint64_t commit_lsn;
	int64_t commit_time; /* microseconds since 2000-01-01 UTC */
	uint32_t xid;
};

/* "16/B374D848": PostgreSQL's spelling of an LSN. */
void spg_lsn_format(uint64_t lsn, char *out, size_t len);
/* "2026-11-27T10:00:00.123456Z". */
void spg_time_format(int64_t pg_us, char *out, size_t len);

/*
 * The event of an Insert, Update or Delete message m (op is "insert",
 * "update" or "delete"; for a Truncate pass op "truncate" and rel: no rows).
 * json receives the object, key the routing key (empty: the relation has no
 * key columns). Returns 0 or -ENOMEM.
 */
int spg_event_build(const struct spg_relation *rel, const char *op, const struct spg_msg *m,
		    const struct spg_txn *txn, struct dc_buf *json, struct dc_buf *key);

/*
 * The topic for a relation: tmpl with {schema} and {table} replaced; characters
 * Danube does not allow in a topic name (only letters, digits, '_', '-') become
 * '_'. Returns 0 or -ENOMEM.
 */
int spg_topic_for(const char *tmpl, const struct spg_relation *rel, struct dc_buf *out);

/* Whether tmpl is a usable template: starts with '/', knows only {schema} and {table}. */
bool spg_topic_template_ok(const char *tmpl);

#endif

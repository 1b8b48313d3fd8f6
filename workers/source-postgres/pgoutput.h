/*
 * A decoder for PostgreSQL's pgoutput logical replication messages (protocol
 * version 1): pure and bounds-checked, no I/O, so it can be fuzzed.
 */
#ifndef SPG_PGOUTPUT_H
#define SPG_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spg_column {
	char *name;
	uint32_t type; /* pg_type oid */
	int32_t typmod;
	bool key; /* part of the replica identity (the primary key by default) */
};

struct spg_relation {
	uint32_t id;
	char *schema; /* "pg_catalog" where the message says "" */
	char *name;
	char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
	uint16_t ncols;
	struct spg_column *cols;
};

/* One column value; data points into the decoded buffer (not NUL-terminated). */
struct spg_value {
	char kind; /* 'n' null, 'u' unchanged TOASTed value, 't' text, 'b' binary */
	const char *data;
	uint32_t len;
};

struct spg_tuple {
	uint16_t ncols;
	struct spg_value *vals;
};

enum spg_msg_type {
	SPG_BEGIN = 'B',
	SPG_COMMIT = 'C',
	SPG_ORIGIN = 'O',
	SPG_RELATION = 'R',
	SPG_TYPE = 'Y',
	SPG_INSERT = 'I',
	SPG_UPDATE = 'U',
	SPG_DELETE = 'D',
	SPG_TRUNCATE = 'T',
	SPG_MESSAGE = 'M',
};

struct spg_msg {
	enum spg_msg_type type;
	/* Begin: final_lsn, timestamp, xid. Commit: lsn = commit LSN, end_lsn, timestamp. */
	uint64_t lsn, end_lsn;
	int64_t timestamp; /* microseconds since 2000-01-01 00:00 UTC */
	uint32_t xid;
	/* Relation, Insert, Update, Delete: the relation (owned by the decoder's cache). */
	const struct spg_relation *rel;
	/* Update/Delete: the old tuple, if sent: 'K' key columns only or 'O' whole row. */
	char old_kind; /* 0 when absent */
	struct spg_tuple old_tuple, new_tuple;
	/* Truncate: the relations (owned by the decoder), its option bits. */
	const struct spg_relation **truncated;
	uint32_t ntruncated;
	uint8_t truncate_options; /* 1 cascade, 2 restart identity */
};

/* The decoder: a relation cache plus scratch space the last message points into. */
struct spg_decoder {
	struct spg_relation **rels;
	size_t nrels, caprels;
	size_t last;               /* index of the last relation looked up */
	struct spg_value *vals[2]; /* old and new tuple */
	size_t capvals[2];
	const struct spg_relation **truncs;
	size_t captruncs;
	char error[128];
};

void spg_decoder_init(struct spg_decoder *d);
void spg_decoder_free(struct spg_decoder *d);

/*
 * Decodes one pgoutput message of len bytes. Returns 0 and fills *m (valid
 * until the next call; values point into buf), -EBADMSG for a malformed or
 * unknown message (d->error says why), -ENOMEM.
 */
int spg_decode(struct spg_decoder *d, const uint8_t *buf, size_t len, struct spg_msg *m);

/* The cached relation with this id, or NULL. */
const struct spg_relation *spg_relation_find(struct spg_decoder *d, uint32_t id);

#endif

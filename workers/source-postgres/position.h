/*
 * Which WAL position source-postgres may confirm to PostgreSQL: records carry
 * sequence numbers as tokens, and a transaction's end LSN becomes confirmable
 * only once every record submitted up to its Commit was acknowledged by Danube.
 */
#ifndef SPG_POSITION_H
#define SPG_POSITION_H

#include <stddef.h>
#include <stdint.h>

struct spg_mark {
	uint64_t seq; /* the last record submitted before this position */
	uint64_t lsn;
};

struct spg_position {
	uint64_t submitted; /* sequence number of the last record handed to the runtime */
	uint64_t acked; /* the runtime's committed() token: every record up to it is in Danube */
	uint64_t confirmed;     /* the LSN PostgreSQL may forget up to (the slot's flush LSN) */
	struct spg_mark *marks; /* ring of positions waiting for acknowledgements */
	size_t head, len, cap;
};

/* confirmed starts at the slot's confirmed_flush_lsn (never report less). */
void spg_position_init(struct spg_position *p, uint64_t confirmed);
void spg_position_free(struct spg_position *p);

/* The token for the next record; spg_position_submitted once the runtime took it. */
uint64_t spg_position_next_token(const struct spg_position *p);
void spg_position_submitted(struct spg_position *p, uint64_t token);

/*
 * Everything submitted so far ends at lsn (a Commit's end LSN, or a keepalive's
 * WAL end between transactions). Returns 0 or -ENOMEM.
 */
int spg_position_mark(struct spg_position *p, uint64_t lsn);

/* committed(token): every record up to token is acknowledged. */
void spg_position_acked(struct spg_position *p, uint64_t token);

/* Marks still waiting (for tests and logs). */
size_t spg_position_pending(const struct spg_position *p);

#endif

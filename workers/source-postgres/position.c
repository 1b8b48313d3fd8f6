/*
 * Confirmable WAL positions: a FIFO of (last record, LSN) marks, popped as the
 * runtime reports acknowledged records. Marks with the same last record merge,
 * so the FIFO never holds more marks than records in flight plus one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "position.h"
#include "ring.h"

void spg_position_init(struct spg_position *p, uint64_t confirmed)
{
	memset(p, 0, sizeof(*p));
	p->confirmed = confirmed;
}

void spg_position_free(struct spg_position *p)
{
	free(p->marks);
	memset(p, 0, sizeof(*p));
}

uint64_t spg_position_next_token(const struct spg_position *p)
{
	return p->submitted + 1;
}

void spg_position_submitted(struct spg_position *p, uint64_t token)
{
	p->submitted = token;
}

static void advance(struct spg_position *p, uint64_t lsn)
{
	if (lsn > p->confirmed)
		p->confirmed = lsn;
}

static struct spg_mark *mark_at(struct spg_position *p, size_t i)
{
	return &p->marks[(p->head + i) % p->cap];
}

int spg_position_mark(struct spg_position *p, uint64_t lsn)
{
	struct spg_mark *tail;

	if (p->acked >= p->submitted) {
		advance(p, lsn);
		return 0;
	}
	if (p->len > 0) {
		tail = mark_at(p, p->len - 1);
		if (tail->seq == p->submitted) {
			if (lsn > tail->lsn)
				tail->lsn = lsn;
			return 0;
		}
	}
	if (dc_ring_reserve(&p->marks, sizeof(*p->marks), &p->cap, &p->head, p->len, 64) != 0)
		return -ENOMEM;
	p->len++;
	tail = mark_at(p, p->len - 1);
	tail->seq = p->submitted;
	tail->lsn = lsn;
	return 0;
}

void spg_position_acked(struct spg_position *p, uint64_t token)
{
	if (token > p->acked)
		p->acked = token;
	while (p->len > 0 && mark_at(p, 0)->seq <= p->acked) {
		advance(p, mark_at(p, 0)->lsn);
		p->head = (p->head + 1) % p->cap;
		p->len--;
	}
}

size_t spg_position_pending(const struct spg_position *p)
{
	return p->len;
}

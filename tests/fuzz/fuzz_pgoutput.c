/*
 * libFuzzer target for source-postgres's decoder: a stream of length-prefixed
 * pgoutput messages through one decoder (so relations stay cached), each
 * change turned into its JSON event, topic and routing key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/source-postgres/event.h"
#include "../../workers/source-postgres/pgoutput.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void build(const struct spg_relation *rel, const char *op, const struct spg_msg *m,
		  struct dc_buf *json, struct dc_buf *key, struct dc_buf *topic)
{
	struct spg_txn txn = {.commit_lsn = m->lsn, .commit_time = m->timestamp, .xid = m->xid};

	if (spg_event_build(rel, op, m, &txn, json, key) == 0 && json->len > 0 &&
	    (json->p[0] != '{' || json->p[json->len - 1] != '}'))
		abort();
	(void)spg_topic_for("/default/{schema}-{table}", rel, topic);
}

/*
 * Relation 1, public.t (id int4 key, note text, price numeric, paid bool),
 * known before the input starts so short inputs reach the change paths.
 */
/* clang-format off */
static const uint8_t known_relation[] = {
	'R', 0, 0, 0, 1, 'p', 'u', 'b', 'l', 'i', 'c', 0, 't', 0, 'd', 0, 4,
	1, 'i', 'd', 0, 0, 0, 0, 23, 0xff, 0xff, 0xff, 0xff,
	0, 'n', 'o', 't', 'e', 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff,
	0, 'p', 'r', 'i', 'c', 'e', 0, 0, 0, 0x06, 0xa4, 0xff, 0xff, 0xff, 0xff,
	0, 'p', 'a', 'i', 'd', 0, 0, 0, 0, 16, 0xff, 0xff, 0xff, 0xff,
};
/* clang-format on */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spg_decoder d;
	struct dc_buf json = {0}, key = {0}, topic = {0};
	struct spg_msg m;

	spg_decoder_init(&d);
	if (spg_decode(&d, known_relation, sizeof(known_relation), &m) != 0)
		abort();
	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];

		data += 2, size -= 2;
		if (n > size)
			n = size;
		/* An exact-size copy, so ASan sees any read past the message. */
		uint8_t *msg = malloc(n ? n : 1);

		if (!msg)
			break;
		memcpy(msg, data, n);
		if (spg_decode(&d, msg, n, &m) == 0) {
			if (m.type == SPG_INSERT)
				build(m.rel, "insert", &m, &json, &key, &topic);
			else if (m.type == SPG_UPDATE)
				build(m.rel, "update", &m, &json, &key, &topic);
			else if (m.type == SPG_DELETE)
				build(m.rel, "delete", &m, &json, &key, &topic);
			for (uint32_t i = 0; m.type == SPG_TRUNCATE && i < m.ntruncated; i++)
				build(m.truncated[i], "truncate", &m, &json, &key, &topic);
		}
		free(msg);
		data += n, size -= n;
	}
	dc_buf_free(&json);
	dc_buf_free(&key);
	dc_buf_free(&topic);
	spg_decoder_free(&d);
	return 0;
}

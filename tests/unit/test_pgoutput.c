/* source-postgres's pure parts: the pgoutput decoder, the JSON events and the confirmable LSN. */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/source-postgres/event.h"
#include "../../workers/source-postgres/pgoutput.h"
#include "../../workers/source-postgres/position.h"

/* A pgoutput message under construction (network byte order). */
struct w {
	uint8_t b[4096];
	size_t n;
};

static void w8(struct w *w, uint8_t v)
{
	ck_assert_uint_lt(w->n, sizeof(w->b));
	w->b[w->n++] = v;
}

static void w16(struct w *w, uint16_t v)
{
	w8(w, (uint8_t)(v >> 8));
	w8(w, (uint8_t)v);
}

static void w32(struct w *w, uint32_t v)
{
	w16(w, (uint16_t)(v >> 16));
	w16(w, (uint16_t)v);
}

static void w64(struct w *w, uint64_t v)
{
	w32(w, (uint32_t)(v >> 32));
	w32(w, (uint32_t)v);
}

static void wstr(struct w *w, const char *s)
{
	do
		w8(w, (uint8_t)*s);
	while (*s++);
}

static void wtext(struct w *w, const char *s)
{
	w8(w, 't');
	w32(w, (uint32_t)strlen(s));
	for (; *s; s++)
		w8(w, (uint8_t)*s);
}

struct col {
	const char *name;
	uint32_t type;
	bool key;
};

static struct w relation(uint32_t id, const char *schema, const char *name, const struct col *c,
			 uint16_t n)
{
	struct w w = {.n = 0};

	w8(&w, 'R');
	w32(&w, id);
	wstr(&w, schema);
	wstr(&w, name);
	w8(&w, 'd');
	w16(&w, n);
	for (uint16_t i = 0; i < n; i++) {
		w8(&w, c[i].key ? 1 : 0);
		wstr(&w, c[i].name);
		w32(&w, c[i].type);
		w32(&w, 0xffffffffu);
	}
	return w;
}

static const struct col orders[] = {
	{"id", 23, true}, {"note", 25, false}, {"price", 1700, false}, {"paid", 16, false}};

static void decode_ok(struct spg_decoder *d, const struct w *w, struct spg_msg *m)
{
	int rc = spg_decode(d, w->b, w->n, m);

	ck_assert_msg(rc == 0, "decode: %d %s", rc, d->error);
}

/* Relation of orders, then Insert (1, 'a"b', 9.50, true). */
static void load_orders(struct spg_decoder *d)
{
	struct w r = relation(16384, "public", "orders", orders, 4);
	struct spg_msg m;

	decode_ok(d, &r, &m);
	ck_assert_int_eq(m.type, SPG_RELATION);
	ck_assert_str_eq(m.rel->name, "orders");
}

static struct w insert_row(const char *id, const char *note)
{
	struct w w = {.n = 0};

	w8(&w, 'I');
	w32(&w, 16384);
	w8(&w, 'N');
	w16(&w, 4);
	wtext(&w, id);
	if (note)
		wtext(&w, note);
	else
		w8(&w, 'n');
	wtext(&w, "9.50");
	wtext(&w, "t");
	return w;
}

START_TEST(decodes_begin_relation_insert_commit)
{
	struct spg_decoder d;
	struct spg_msg m;
	struct w b = {.n = 0}, c = {.n = 0}, i;

	spg_decoder_init(&d);
	w8(&b, 'B');
	w64(&b, 0x16B3748);
	w64(&b, 123456789);
	w32(&b, 777);
	decode_ok(&d, &b, &m);
	ck_assert_int_eq(m.type, SPG_BEGIN);
	ck_assert_uint_eq(m.lsn, 0x16B3748);
	ck_assert_int_eq(m.timestamp, 123456789);
	ck_assert_uint_eq(m.xid, 777);

	load_orders(&d);
	ck_assert_uint_eq(spg_relation_find(&d, 16384)->ncols, 4);
	ck_assert(spg_relation_find(&d, 16384)->cols[0].key);
	ck_assert(!spg_relation_find(&d, 16384)->cols[1].key);

	i = insert_row("1", "a\"b");
	decode_ok(&d, &i, &m);
	ck_assert_int_eq(m.type, SPG_INSERT);
	ck_assert_uint_eq(m.new_tuple.ncols, 4);
	ck_assert_int_eq(m.new_tuple.vals[1].kind, 't');
	ck_assert_uint_eq(m.new_tuple.vals[1].len, 3);
	ck_assert(memcmp(m.new_tuple.vals[1].data, "a\"b", 3) == 0);
	ck_assert_int_eq(m.old_kind, 0);

	w8(&c, 'C');
	w8(&c, 0);
	w64(&c, 0x16B3748);
	w64(&c, 0x16B3780);
	w64(&c, 123456789);
	decode_ok(&d, &c, &m);
	ck_assert_int_eq(m.type, SPG_COMMIT);
	ck_assert_uint_eq(m.lsn, 0x16B3748);
	ck_assert_uint_eq(m.end_lsn, 0x16B3780);
	spg_decoder_free(&d);
}
END_TEST

START_TEST(decodes_update_with_old_key_delete_and_truncate)
{
	struct spg_decoder d;
	struct spg_msg m;
	struct w u = {.n = 0}, del = {.n = 0}, t = {.n = 0};
	struct w r2 = relation(16390, "", "cfg", orders, 1);

	spg_decoder_init(&d);
	load_orders(&d);
	decode_ok(&d, &r2, &m);
	ck_assert_str_eq(m.rel->schema, "pg_catalog");

	w8(&u, 'U');
	w32(&u, 16384);
	w8(&u, 'K');
	w16(&u, 4);
	wtext(&u, "1");
	w8(&u, 'n');
	w8(&u, 'n');
	w8(&u, 'n');
	w8(&u, 'N');
	w16(&u, 4);
	wtext(&u, "2");
	w8(&u, 'u');
	wtext(&u, "1");
	wtext(&u, "f");
	decode_ok(&d, &u, &m);
	ck_assert_int_eq(m.type, SPG_UPDATE);
	ck_assert_int_eq(m.old_kind, 'K');
	ck_assert(memcmp(m.old_tuple.vals[0].data, "1", 1) == 0);
	ck_assert(memcmp(m.new_tuple.vals[0].data, "2", 1) == 0);
	ck_assert_int_eq(m.new_tuple.vals[1].kind, 'u');

	w8(&del, 'D');
	w32(&del, 16384);
	w8(&del, 'O');
	w16(&del, 4);
	wtext(&del, "2");
	wtext(&del, "x");
	wtext(&del, "1");
	wtext(&del, "f");
	decode_ok(&d, &del, &m);
	ck_assert_int_eq(m.type, SPG_DELETE);
	ck_assert_int_eq(m.old_kind, 'O');
	ck_assert_uint_eq(m.old_tuple.ncols, 4);

	w8(&t, 'T');
	w32(&t, 2);
	w8(&t, 1);
	w32(&t, 16390);
	w32(&t, 16384);
	decode_ok(&d, &t, &m);
	ck_assert_int_eq(m.type, SPG_TRUNCATE);
	ck_assert_uint_eq(m.ntruncated, 2);
	ck_assert_str_eq(m.truncated[0]->name, "cfg");
	ck_assert_str_eq(m.truncated[1]->name, "orders");
	ck_assert_uint_eq(m.truncate_options, 1);
	spg_decoder_free(&d);
}
END_TEST

START_TEST(new_relation_message_replaces_the_cached_one)
{
	static const struct col wider[] = {{"id", 23, true},
					   {"note", 25, false},
					   {"price", 1700, false},
					   {"paid", 16, false},
					   {"added", 25, false}};
	struct spg_decoder d;
	struct spg_msg m;
	struct w r = relation(16384, "public", "orders", wider, 5);

	spg_decoder_init(&d);
	load_orders(&d);
	decode_ok(&d, &r, &m);
	ck_assert_uint_eq(d.nrels, 1);
	ck_assert_uint_eq(spg_relation_find(&d, 16384)->ncols, 5);
	ck_assert_str_eq(spg_relation_find(&d, 16384)->cols[4].name, "added");
	spg_decoder_free(&d);
}
END_TEST

START_TEST(rejects_every_truncation_and_bad_messages)
{
	struct spg_decoder d;
	struct spg_msg m;
	struct w i = insert_row("42", "text"), bad = {.n = 0}, wide = {.n = 0};
	struct w r = relation(16384, "public", "orders", orders, 4);

	spg_decoder_init(&d);
	/* A change before its relation is a protocol error. */
	ck_assert_int_eq(spg_decode(&d, i.b, i.n, &m), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(d.error, "Relation"));
	for (size_t n = 0; n < r.n; n++)
		ck_assert_int_eq(spg_decode(&d, r.b, n, &m), -EBADMSG);
	decode_ok(&d, &r, &m);
	for (size_t n = 0; n < i.n; n++)
		ck_assert_msg(spg_decode(&d, i.b, n, &m) == -EBADMSG, "prefix %zu accepted", n);
	decode_ok(&d, &i, &m);
	w8(&bad, 'Z');
	ck_assert_int_eq(spg_decode(&d, bad.b, bad.n, &m), -EBADMSG);
	/* More columns than the relation has. */
	w8(&wide, 'I');
	w32(&wide, 16384);
	w8(&wide, 'N');
	w16(&wide, 5);
	for (int k = 0; k < 5; k++)
		w8(&wide, 'n');
	ck_assert_int_eq(spg_decode(&d, wide.b, wide.n, &m), -EBADMSG);
	/* An unknown column kind. */
	i.b[i.n - 6] = 'x';
	ck_assert_int_eq(spg_decode(&d, i.b, i.n, &m), -EBADMSG);
	spg_decoder_free(&d);
}
END_TEST

START_TEST(insert_event_is_json_with_typed_values)
{
	struct spg_decoder d;
	struct spg_msg m;
	struct dc_buf json = {0}, key = {0};
	struct spg_txn txn = {
		.commit_lsn = 0x16B3748, .commit_time = 86400000000LL + 250, .xid = 9};
	struct w i = insert_row("7", "tab\there \"q\" \\ \x01 \xc3\xa9 \xff");

	spg_decoder_init(&d);
	load_orders(&d);
	decode_ok(&d, &i, &m);
	ck_assert_int_eq(spg_event_build(m.rel, "insert", &m, &txn, &json, &key), 0);
	ck_assert_str_eq(json.p,
			 "{\"op\":\"insert\",\"schema\":\"public\",\"table\":\"orders\","
			 "\"new\":{\"id\":7,\"note\":\"tab\\there \\\"q\\\" \\\\ \\u0001 "
			 "\xc3\xa9 \\ufffd\",\"price\":9.50,\"paid\":true},"
			 "\"lsn\":\"0/16B3748\",\"commit_time\":\"2000-01-02T00:00:00.000250Z\","
			 "\"xid\":9}");
	ck_assert_str_eq(key.p, "7");
	dc_buf_free(&json);
	dc_buf_free(&key);
	spg_decoder_free(&d);
}
END_TEST

START_TEST(update_and_delete_events_carry_old_key_or_row)
{
	static const struct col two_keys[] = {{"a", 25, true}, {"b", 20, true}, {"v", 701, false}};
	struct spg_decoder d;
	struct spg_msg m;
	struct dc_buf json = {0}, key = {0};
	struct spg_txn txn = {.commit_lsn = 0x100000010ULL, .commit_time = 0, .xid = 1};
	struct w r = relation(5, "s", "kv", two_keys, 3), u = {.n = 0}, del = {.n = 0};

	spg_decoder_init(&d);
	decode_ok(&d, &r, &m);
	w8(&u, 'U');
	w32(&u, 5);
	w8(&u, 'N');
	w16(&u, 3);
	wtext(&u, "x,y");
	wtext(&u, "-3");
	wtext(&u, "NaN");
	decode_ok(&d, &u, &m);
	ck_assert_int_eq(spg_event_build(m.rel, "update", &m, &txn, &json, &key), 0);
	ck_assert_str_eq(json.p, "{\"op\":\"update\",\"schema\":\"s\",\"table\":\"kv\","
				 "\"new\":{\"a\":\"x,y\",\"b\":-3,\"v\":\"NaN\"},"
				 "\"lsn\":\"1/10\",\"commit_time\":\"2000-01-01T00:00:00.000000Z\","
				 "\"xid\":1}");
	ck_assert_str_eq(key.p, "[\"x,y\",\"-3\"]");

	w8(&del, 'D');
	w32(&del, 5);
	w8(&del, 'K');
	w16(&del, 3);
	wtext(&del, "x,y");
	wtext(&del, "-3");
	w8(&del, 'n');
	decode_ok(&d, &del, &m);
	ck_assert_int_eq(spg_event_build(m.rel, "delete", &m, &txn, &json, &key), 0);
	ck_assert_str_eq(json.p, "{\"op\":\"delete\",\"schema\":\"s\",\"table\":\"kv\","
				 "\"old\":{\"a\":\"x,y\",\"b\":-3},"
				 "\"lsn\":\"1/10\",\"commit_time\":\"2000-01-01T00:00:00.000000Z\","
				 "\"xid\":1}");
	ck_assert_str_eq(key.p, "[\"x,y\",\"-3\"]");

	ck_assert_int_eq(spg_event_build(m.rel, "truncate", &m, &txn, &json, &key), 0);
	ck_assert_str_eq(json.p, "{\"op\":\"truncate\",\"schema\":\"s\",\"table\":\"kv\","
				 "\"lsn\":\"1/10\",\"commit_time\":\"2000-01-01T00:00:00.000000Z\","
				 "\"xid\":1}");
	ck_assert_str_eq(key.p, "");
	dc_buf_free(&json);
	dc_buf_free(&key);
	spg_decoder_free(&d);
}
END_TEST

START_TEST(topic_template_substitutes_and_sanitizes)
{
	struct spg_relation rel = {.schema = "public", .name = "Order Items$"};
	struct dc_buf t = {0};

	ck_assert_int_eq(spg_topic_for("/default/{schema}-{table}", &rel, &t), 0);
	ck_assert_str_eq(t.p, "/default/public-Order_Items_");
	ck_assert_int_eq(spg_topic_for("/cdc/all", &rel, &t), 0);
	ck_assert_str_eq(t.p, "/cdc/all");
	dc_buf_free(&t);
	ck_assert(spg_topic_template_ok("/default/{schema}-{table}"));
	ck_assert(spg_topic_template_ok("/cdc/{table}"));
	ck_assert(!spg_topic_template_ok("default/{table}"));
	ck_assert(!spg_topic_template_ok("/default/{tables}"));
	ck_assert(!spg_topic_template_ok("/default/a/b"));
	ck_assert(!spg_topic_template_ok("/default/"));
	ck_assert(!spg_topic_template_ok("//x"));
	ck_assert(!spg_topic_template_ok("/default/a b"));
}
END_TEST

START_TEST(lsn_and_time_use_postgres_spelling)
{
	char buf[64];

	spg_lsn_format(0x16B3748, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0/16B3748");
	spg_lsn_format(0x1600000000ULL | 0xB374D848u, buf, sizeof(buf));
	ck_assert_str_eq(buf, "16/B374D848");
	spg_time_format(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2000-01-01T00:00:00.000000Z");
	spg_time_format(-1, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1999-12-31T23:59:59.999999Z");
	/* 2026-11-27T10:00:00Z */
	spg_time_format((1795773600LL - 946684800LL) * 1000000LL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-27T10:00:00.000000Z");
}
END_TEST

START_TEST(position_confirms_a_transaction_only_when_all_its_records_are_acked)
{
	struct spg_position p;
	uint64_t t1, t2, t3;

	spg_position_init(&p, 100);
	/* Transaction A: two records, ends at 200. */
	t1 = spg_position_next_token(&p);
	spg_position_submitted(&p, t1);
	t2 = spg_position_next_token(&p);
	spg_position_submitted(&p, t2);
	ck_assert_int_eq(spg_position_mark(&p, 200), 0);
	/* Transaction B: one record, ends at 300; then an empty one ending at 350 merges. */
	t3 = spg_position_next_token(&p);
	spg_position_submitted(&p, t3);
	ck_assert_int_eq(spg_position_mark(&p, 300), 0);
	ck_assert_int_eq(spg_position_mark(&p, 350), 0);
	ck_assert_uint_eq(spg_position_pending(&p), 2);
	spg_position_acked(&p, t1);
	ck_assert_uint_eq(p.confirmed, 100);
	spg_position_acked(&p, t2);
	ck_assert_uint_eq(p.confirmed, 200);
	spg_position_acked(&p, t3);
	ck_assert_uint_eq(p.confirmed, 350);
	ck_assert_uint_eq(spg_position_pending(&p), 0);
	/* Nothing in flight: an empty transaction (or a keepalive) is confirmable at once. */
	ck_assert_int_eq(spg_position_mark(&p, 400), 0);
	ck_assert_uint_eq(p.confirmed, 400);
	/* Never backwards (a replayed transaction after a reconnect). */
	ck_assert_int_eq(spg_position_mark(&p, 120), 0);
	ck_assert_uint_eq(p.confirmed, 400);
	spg_position_free(&p);
}
END_TEST

START_TEST(position_ring_grows_past_its_first_capacity)
{
	struct spg_position p;

	spg_position_init(&p, 0);
	for (uint64_t i = 1; i <= 1000; i++) {
		spg_position_submitted(&p, spg_position_next_token(&p));
		ck_assert_int_eq(spg_position_mark(&p, i * 10), 0);
		if (i % 3 == 0)
			spg_position_acked(&p, i - 2);
	}
	ck_assert_uint_eq(p.confirmed, 997 * 10);
	spg_position_acked(&p, 1000);
	ck_assert_uint_eq(p.confirmed, 10000);
	ck_assert_uint_eq(spg_position_pending(&p), 0);
	spg_position_free(&p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pgoutput");
	TCase *tc = tcase_create("decode");

	tcase_add_test(tc, decodes_begin_relation_insert_commit);
	tcase_add_test(tc, decodes_update_with_old_key_delete_and_truncate);
	tcase_add_test(tc, new_relation_message_replaces_the_cached_one);
	tcase_add_test(tc, rejects_every_truncation_and_bad_messages);
	suite_add_tcase(s, tc);
	tc = tcase_create("event");
	tcase_add_test(tc, insert_event_is_json_with_typed_values);
	tcase_add_test(tc, update_and_delete_events_carry_old_key_or_row);
	tcase_add_test(tc, topic_template_substitutes_and_sanitizes);
	tcase_add_test(tc, lsn_and_time_use_postgres_spelling);
	suite_add_tcase(s, tc);
	tc = tcase_create("position");
	tcase_add_test(tc, position_confirms_a_transaction_only_when_all_its_records_are_acked);
	tcase_add_test(tc, position_ring_grows_past_its_first_capacity);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)

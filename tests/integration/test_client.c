/*
 * The C Danube client against the grpcio test broker: ordering, routing,
 * redelivery, recovery from unloads and broker restarts, auth and refusals.
 */
#include "broker.h"
#include "harness.h"

#include "clock.h"
#include "danube/client.h"
#include "h2/grpc.h"
#include "log.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* ------------------------------------------------------------------ fixture */

struct fx {
	struct ev_loop *loop;
	struct th_broker *broker;
	struct dn_client *client;
	struct dn_producer *prod;
	struct dn_consumer *cons;
	bool prod_ready, cons_ready;
	int prod_err_code, cons_err_code;
	char prod_err[1024], cons_err[1024];
	/* producer side */
	unsigned long sent, acked, send_failed;
	int last_code;
	char last_error[1024];
	/* consumer side */
	unsigned long received, bad;
	unsigned char *seen; /* per sequence number: times received */
	unsigned long nseen;
	unsigned long distinct;
	long last_seq[16]; /* per partition: last sequence number seen first */
	unsigned long order_errors;
	bool nack_first;
	unsigned long nacked;
	uint64_t nacked_offset;
	bool redelivered;
	uint32_t partitions;
	char topic[128];
	/* consumer events */
	unsigned long waited, gaps;
	char wait_reason[256];
	uint64_t gap_expected, gap_got, skipped;
	/* held: received, not acknowledged yet (hold_acks) */
	bool hold_acks;
	struct dn_message *held[64];
	unsigned long nheld;
	uint64_t max_offset;
};

static bool cond_cb_result;

struct waiter {
	bool (*fn)(struct fx *);
	struct fx *f;
};

static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct waiter *wt = w->data;

	if (wt->fn(wt->f)) {
		cond_cb_result = true;
		ev_break(loop, EVBREAK_ONE);
	}
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ONE);
}

/* Run the loop until fn(f) holds (checked every 10 ms) or timeout_ms passes. */
static bool run_until(struct fx *f, bool (*fn)(struct fx *), int timeout_ms)
{
	struct waiter wt = {fn, f};
	ev_timer poll, deadline;

	if (fn(f))
		return true;
	cond_cb_result = false;
	ev_timer_init(&poll, poll_cb, 0.01, 0.01);
	poll.data = &wt;
	ev_timer_init(&deadline, deadline_cb, timeout_ms / 1000.0, 0.0);
	ev_timer_start(f->loop, &poll);
	ev_timer_start(f->loop, &deadline);
	ev_run(f->loop, 0);
	ev_timer_stop(f->loop, &poll);
	ev_timer_stop(f->loop, &deadline);
	return cond_cb_result || fn(f);
}

static void fx_init(struct fx *f, const char *const *broker_args)
{
	memset(f, 0, sizeof(*f));
	dc_log_open("test_client", LOG_USER, false, true);
	/* DN_TEST_DEBUG=1 shows every retry of the client. */
	dc_log_set_level(getenv("DN_TEST_DEBUG") ? DC_LOG_DEBUG : DC_LOG_WARN);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	ck_assert_ptr_nonnull(f->loop);
	f->broker = th_broker_start(th_tmpdir(), broker_args);
	ck_assert_ptr_nonnull(f->broker);
	for (int i = 0; i < 16; i++)
		f->last_seq[i] = -1;
}

static void fx_client(struct fx *f, const char *url, const char *token, const char *ca,
		      uint32_t max_msg)
{
	struct dn_client_opts o = {
		.service_url = url ? url : th_broker_url(f->broker),
		.token = token,
		.tls_ca = ca,
		.max_msg_size = max_msg,
	};

	ck_assert_int_eq(dn_client_new(f->loop, &o, &f->client), 0);
}

static void fx_done(struct fx *f)
{
	dn_consumer_close(f->cons);
	dn_producer_close(f->prod);
	dn_client_free(f->client);
	dc_grpc_shutdown_all();
	ev_loop_destroy(f->loop);
	free(f->seen);
}

static void admin(struct fx *f, const char *cmd, const char *topic, const char *a1, const char *a2)
{
	ck_assert_int_eq(th_broker_admin(f->broker, cmd, topic, a1, a2, NULL), 0);
}

/* ----------------------------------------------------------------- producer */

static void prod_ready(void *arg)
{
	((struct fx *)arg)->prod_ready = true;
}

static void prod_error(void *arg, int code, const char *error)
{
	struct fx *f = arg;

	f->prod_err_code = code;
	snprintf(f->prod_err, sizeof(f->prod_err), "%s", error);
}

static void sent_cb(void *arg, int code, const char *error)
{
	struct fx *f = arg;

	if (code == DN_OK) {
		f->acked++;
	} else {
		f->send_failed++;
		f->last_code = code;
		snprintf(f->last_error, sizeof(f->last_error), "%s", error);
	}
}

static void start_producer(struct fx *f, enum dn_dispatch d, uint32_t partitions, uint32_t inflight)
{
	struct dn_producer_opts o = {
		.topic = f->topic,
		.name = "test-producer",
		.dispatch = d,
		.partitions = partitions,
		.max_inflight = inflight,
	};

	ck_assert_int_eq(dn_producer_new(f->client, &o, prod_ready, prod_error, f, &f->prod), 0);
}

/* Payload "SEQ:" padded with a pattern derived from SEQ; attribute seq=SEQ. */
static size_t make_payload(char *buf, size_t cap, unsigned long seq, size_t len)
{
	size_t n = (size_t)snprintf(buf, cap, "%lu:", seq);

	for (; n < len && n < cap; n++)
		buf[n] = (char)('a' + (seq + n) % 26);
	return n;
}

static void send_seq(struct fx *f, unsigned long seq, const char *key)
{
	char buf[256], seqs[32];
	size_t len = make_payload(buf, sizeof(buf), seq, 40 + seq % 100);
	struct dn_attr attrs[2] = {{"seq", seqs}, {"source", "test_client"}};

	snprintf(seqs, sizeof(seqs), "%lu", seq);
	ck_assert_int_eq(dn_producer_send(f->prod, buf, len, attrs, 2, key, sent_cb, f), 0);
	f->sent++;
}

/* ----------------------------------------------------------------- consumer */

static void cons_ready(void *arg)
{
	((struct fx *)arg)->cons_ready = true;
}

static void cons_error(void *arg, int code, const char *error)
{
	struct fx *f = arg;

	f->cons_err_code = code;
	snprintf(f->cons_err, sizeof(f->cons_err), "%s", error);
}

static int partition_of(const struct fx *f, const char *topic)
{
	const char *p = strstr(topic, "-part-");

	return p ? atoi(p + 6) : 0;
}

/* Check a message against what send_seq made; record order per partition. */
static void check_message(struct fx *f, const struct dn_message *m)
{
	char buf[256], seqs[32];
	unsigned long seq = strtoul((const char *)m->payload, NULL, 10);
	size_t len;
	int part;

	if (seq >= f->nseen) {
		f->bad++;
		return;
	}
	len = make_payload(buf, sizeof(buf), seq, 40 + seq % 100);
	snprintf(seqs, sizeof(seqs), "%lu", seq);
	if (m->payload_len != len || memcmp(m->payload, buf, len) != 0 || m->nattrs != 2)
		f->bad++;
	for (size_t i = 0; i < m->nattrs; i++) {
		if (strcmp(m->attrs[i].key, "seq") == 0 && strcmp(m->attrs[i].value, seqs) != 0)
			f->bad++;
		else if (strcmp(m->attrs[i].key, "source") == 0 &&
			 strcmp(m->attrs[i].value, "test_client") != 0)
			f->bad++;
	}
	part = partition_of(f, m->topic);
	if (f->seen[seq]++ == 0) {
		f->distinct++;
		/* First deliveries of a partition arrive in send order. */
		if (part >= 0 && part < 16) {
			if ((long)seq < f->last_seq[part])
				f->order_errors++;
			f->last_seq[part] = (long)seq;
		}
	}
}

static void on_message(void *arg, struct dn_message *m)
{
	struct fx *f = arg;

	f->received++;
	check_message(f, m);
	ck_assert_int_eq(dn_consumer_ack(f->cons, m, NULL, NULL), 0);
	dn_message_free(m);
}

static void start_consumer(struct fx *f, const char *sub, enum dn_sub_type type, dn_message_fn fn)
{
	struct dn_consumer_opts o = {
		.topic = f->topic,
		.name = "test-consumer",
		.subscription = sub,
		.type = type,
	};

	ck_assert_int_eq(dn_consumer_new(f->client, &o, cons_ready, fn, cons_error, f, &f->cons),
			 0);
}

static void expect_seqs(struct fx *f, unsigned long n)
{
	f->nseen = n;
	f->seen = calloc(n, 1);
	ck_assert_ptr_nonnull(f->seen);
}

static bool prod_is_ready(struct fx *f)
{
	return f->prod_ready || f->prod_err[0];
}

static bool cons_is_ready(struct fx *f)
{
	return f->cons_ready || f->cons_err[0];
}

static bool all_acked(struct fx *f)
{
	return f->acked + f->send_failed == f->sent;
}

static bool all_received(struct fx *f)
{
	return f->distinct == f->nseen || f->bad > 0;
}

static bool nothing(struct fx *f)
{
	return false;
}

static bool prod_failed(struct fx *f)
{
	return f->prod_err[0] != '\0';
}

static bool cons_failed(struct fx *f)
{
	return f->cons_err[0] != '\0';
}

static bool send_settled(struct fx *f)
{
	return f->sent > 0 && f->acked + f->send_failed == f->sent;
}

static void assert_no_errors(struct fx *f)
{
	ck_assert_msg(f->prod_err[0] == '\0', "producer: %s", f->prod_err);
	ck_assert_msg(f->cons_err[0] == '\0', "consumer: %s", f->cons_err);
	ck_assert_msg(f->send_failed == 0, "send failed: %s", f->last_error);
}

static void on_waiting(void *arg, const char *reason)
{
	struct fx *f = arg;

	f->waited++;
	snprintf(f->wait_reason, sizeof(f->wait_reason), "%s", reason);
}

static void on_gap(void *arg, const char *topic, uint64_t expected, uint64_t got)
{
	struct fx *f = arg;

	if (f->gaps++ == 0) {
		f->gap_expected = expected;
		f->gap_got = got;
	}
	f->skipped += got - expected;
}

/* Like on_message, but holds the message unacknowledged while hold_acks is set. */
static void on_message_held(void *arg, struct dn_message *m)
{
	struct fx *f = arg;

	f->received++;
	check_message(f, m);
	if (m->offset > f->max_offset)
		f->max_offset = m->offset;
	if (f->hold_acks && f->nheld < 64) {
		f->held[f->nheld++] = m;
		return;
	}
	ck_assert_int_eq(dn_consumer_ack(f->cons, m, NULL, NULL), 0);
	dn_message_free(m);
}

static void release_held(struct fx *f)
{
	f->hold_acks = false;
	for (unsigned long i = 0; i < f->nheld; i++) {
		ck_assert_int_eq(dn_consumer_ack(f->cons, f->held[i], NULL, NULL), 0);
		dn_message_free(f->held[i]);
	}
	f->nheld = 0;
}

static void start_consumer_ev(struct fx *f, const char *sub, enum dn_sub_type type,
			      dn_message_fn fn, bool wait)
{
	struct dn_consumer_opts o = {
		.topic = f->topic,
		.name = "test-consumer",
		.subscription = sub,
		.type = type,
		.wait_for_topic = wait,
		.events = {.waiting = on_waiting, .gap = on_gap},
	};

	ck_assert_int_eq(dn_consumer_new(f->client, &o, cons_ready, fn, cons_error, f, &f->cons),
			 0);
}

static bool has_waited(struct fx *f)
{
	return f->waited > 0 || f->cons_err[0];
}

static bool window_held(struct fx *f)
{
	return f->nheld >= 10 && f->acked == f->sent;
}

static bool gap_or_all(struct fx *f)
{
	return f->gaps > 0 && f->max_offset + 1 == f->sent;
}

/* -------------------------------------------------------------------- tests */

/* Producer and consumer on a topic; the consumer subscribes before any send. */
static void setup_pair(struct fx *f, const char *topic, enum dn_dispatch d, uint32_t partitions,
		       uint32_t inflight)
{
	snprintf(f->topic, sizeof(f->topic), "%s", topic);
	f->partitions = partitions;
	if (partitions > 0) {
		char n[16];

		snprintf(n, sizeof(n), "%u", partitions);
		admin(f, "create-partitioned", topic, n,
		      d == DN_DISPATCH_RELIABLE ? "--reliable" : NULL);
	} else {
		admin(f, "create-topic", topic, d == DN_DISPATCH_RELIABLE ? "--reliable" : NULL,
		      NULL);
	}
	start_producer(f, d, partitions, inflight);
	ck_assert(run_until(f, prod_is_ready, 10000));
	assert_no_errors(f);
	start_consumer(f, "test-sub", DN_SUB_EXCLUSIVE, on_message);
	ck_assert(run_until(f, cons_is_ready, 10000));
	assert_no_errors(f);
}

/* Until every message arrived; fails only when none came for 30 s. */
static bool run_while_receiving(struct fx *f)
{
	unsigned long last;

	do {
		last = f->distinct;
		if (run_until(f, all_received, 30000))
			return true;
	} while (f->distinct != last);
	return false;
}

/* 8,000 prove order and integrity per partition (make soak: 100,000). */
START_TEST(reliable_messages_arrive_intact_and_in_order_per_partition)
{
	const unsigned long n = th_scale(8000, 100000);
	struct fx f;

	uint64_t t0, cpu0;

	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	setup_pair(&f, "/default/bulk", DN_DISPATCH_RELIABLE, 4, 1);
	expect_seqs(&f, n);
	t0 = dc_now_ms();
	cpu0 = dc_cpu_us();
	for (unsigned long i = 0; i < n; i++)
		send_seq(&f, i, NULL);
	ck_assert(run_while_receiving(&f));
	ck_assert(run_until(&f, all_acked, 10000));
	/* A figure for the record: this process produces and consumes. */
	fprintf(stderr, "%lu round trip: %.1f s, client CPU %.1f us per message (both ends)\n", n,
		(double)(dc_now_ms() - t0) / 1000.0, (double)(dc_cpu_us() - cpu0) / (double)n);
	assert_no_errors(&f);
	ck_assert_uint_eq(f.bad, 0);
	ck_assert_uint_eq(f.distinct, n);
	ck_assert_uint_eq(f.order_errors, 0);
	ck_assert_uint_eq(f.acked, n);
	fx_done(&f);
}
END_TEST

static void on_keyed(void *arg, struct dn_message *m)
{
	struct fx *f = arg;
	const char *key = m->routing_key;

	f->received++;
	/* Each key must sit on the partition FNV-1a names for it. */
	if (key == NULL ||
	    (uint32_t)partition_of(f, m->topic) != dn_partition_for_key(key, strlen(key), 3))
		f->bad++;
	check_message(f, m);
	ck_assert_int_eq(dn_consumer_ack(f->cons, m, NULL, NULL), 0);
	dn_message_free(m);
}

START_TEST(key_routing_lands_each_key_on_its_fnv1a_partition)
{
	const unsigned long n = 300;
	char key[16];
	struct fx f;

	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/keyed");
	admin(&f, "create-partitioned", f.topic, "3", "--reliable");
	start_producer(&f, DN_DISPATCH_RELIABLE, 3, 1);
	ck_assert(run_until(&f, prod_is_ready, 10000));
	start_consumer(&f, "keyed-sub", DN_SUB_EXCLUSIVE, on_keyed);
	ck_assert(run_until(&f, cons_is_ready, 10000));
	assert_no_errors(&f);
	expect_seqs(&f, n);
	for (unsigned long i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "key-%lu", i % 17);
		send_seq(&f, i, key);
	}
	ck_assert(run_until(&f, all_received, 30000));
	assert_no_errors(&f);
	ck_assert_uint_eq(f.bad, 0);
	ck_assert_uint_eq(f.distinct, n);
	ck_assert_uint_eq(f.order_errors, 0);
	fx_done(&f);
}
END_TEST

static void on_nack_first(void *arg, struct dn_message *m)
{
	struct fx *f = arg;

	f->received++;
	if (f->nacked == 0) {
		f->nacked++;
		f->nacked_offset = m->offset;
		ck_assert_int_eq(dn_consumer_nack(f->cons, m, 100, "test", NULL, NULL), 0);
	} else {
		if (m->offset == f->nacked_offset &&
		    strncmp((const char *)m->payload, "0:", 2) == 0)
			f->redelivered = true;
		check_message(f, m);
		ck_assert_int_eq(dn_consumer_ack(f->cons, m, NULL, NULL), 0);
	}
	dn_message_free(m);
}

static bool redelivered(struct fx *f)
{
	return f->redelivered;
}

START_TEST(nack_redelivers_the_message)
{
	struct fx f;

	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/nacked");
	admin(&f, "create-topic", f.topic, "--reliable", NULL);
	start_producer(&f, DN_DISPATCH_RELIABLE, 0, 1);
	ck_assert(run_until(&f, prod_is_ready, 10000));
	start_consumer(&f, "nack-sub", DN_SUB_EXCLUSIVE, on_nack_first);
	ck_assert(run_until(&f, cons_is_ready, 10000));
	expect_seqs(&f, 1);
	send_seq(&f, 0, NULL);
	ck_assert(run_until(&f, redelivered, 15000));
	assert_no_errors(&f);
	ck_assert_uint_eq(f.bad, 0);
	ck_assert_uint_eq(f.distinct, 1);
	fx_done(&f);
}
END_TEST

/* Send n messages, running `disrupt` once a third of them were received. */
static void stream_through(struct fx *f, unsigned long n, void (*disrupt)(struct fx *))
{
	bool done = false;

	expect_seqs(f, n);
	for (unsigned long i = 0; i < n; i++)
		send_seq(f, i, NULL);
	for (int guard = 0; guard < 6000 && !done; guard++) {
		run_until(f, all_received, 10);
		if (f->distinct >= n / 3 && disrupt != NULL) {
			disrupt(f);
			disrupt = NULL;
		}
		done = all_received(f);
	}
	ck_assert_msg(disrupt == NULL, "the stream never reached a third (%lu received)",
		      f->distinct);
	if (!run_until(f, all_received, 60000)) {
		char *log = th_broker_log(f->broker);

		fprintf(stderr, "--- broker log ---\n%s--- end of broker log ---\n",
			log ? log : "");
		free(log);
		ck_abort_msg("received %lu of %lu (producer: %lu of %lu acknowledged)", f->distinct,
			     n, f->acked, f->sent);
	}
	ck_assert(run_until(f, all_acked, 30000));
	assert_no_errors(f);
	ck_assert_uint_eq(f->bad, 0);
	ck_assert_uint_eq(f->distinct, n);
	ck_assert_uint_eq(f->order_errors, 0);
}

static void unload(struct fx *f)
{
	admin(f, "unload", f->topic, NULL, NULL);
}

START_TEST(topic_unload_mid_stream_loses_nothing)
{
	if (th_broker_needs_test_broker("topic unload (standalone: UNIMPLEMENTED)"))
		return;
	struct fx f;

	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	setup_pair(&f, "/default/unloaded", DN_DISPATCH_RELIABLE, 0, 1);
	stream_through(&f, 3000, unload);
	fx_done(&f);
}
END_TEST

static void kill_and_restart(struct fx *f)
{
	th_broker_kill(f->broker);
	/* The client notices the loss before the broker is back. */
	(void)run_until(f, nothing, 300);
	th_broker_restart(f->broker);
}

START_TEST(broker_kill_and_restart_mid_stream_loses_nothing)
{
	if (th_broker_needs_test_broker("restarts the broker"))
		return;
	struct fx f;

	/* th_broker_start always gives the broker a --data-dir. */
	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	setup_pair(&f, "/default/restarted", DN_DISPATCH_RELIABLE, 2, 1);
	stream_through(&f, 3000, kill_and_restart);
	fx_done(&f);
}
END_TEST

/* A CA and a server certificate for 127.0.0.1, made with the openssl CLI. */
static void make_certs(const char *dir)
{
	char cmd[4096], *out = NULL;
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "set -e; cd '%s'; "
		 "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
		 "-subj /CN=test-ca 2>/dev/null; "
		 "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
		 "-subj /CN=127.0.0.1 2>/dev/null; "
		 "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf; "
		 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "-out server.pem -days 2 -extfile ext.cnf 2>/dev/null",
		 dir);
	rc = th_run(argv, &out, 30000);
	ck_assert_msg(rc == 0, "openssl failed: %s", out ? out : "");
	free(out);
}

static void tls_broker(struct fx *f, char *dir, size_t cap)
{
	static char cert[512], key[512];
	const char *args[] = {"--token", "s3cret", "--tls-cert", cert, "--tls-key", key, NULL};

	snprintf(dir, cap, "%s", th_tmpdir());
	make_certs(dir);
	snprintf(cert, sizeof(cert), "%s/server.pem", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	fx_init(f, args);
}

START_TEST(tls_and_token_work)
{
	if (th_broker_needs_test_broker("the test broker's --token and --tls-cert"))
		return;
	char dir[512], ca[600], url[128];
	struct fx f;

	tls_broker(&f, dir, sizeof(dir));
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	/* The token implies TLS: an http:// URL is upgraded to https. */
	snprintf(url, sizeof(url), "http://%s", th_broker_addr(f.broker));
	fx_client(&f, url, "s3cret", ca, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/secure");
	start_producer(&f, DN_DISPATCH_RELIABLE, 0, 1);
	ck_assert(run_until(&f, prod_is_ready, 15000));
	start_consumer(&f, "secure-sub", DN_SUB_EXCLUSIVE, on_message);
	ck_assert(run_until(&f, cons_is_ready, 15000));
	assert_no_errors(&f);
	expect_seqs(&f, 50);
	for (unsigned long i = 0; i < 50; i++)
		send_seq(&f, i, NULL);
	ck_assert(run_until(&f, all_received, 20000));
	assert_no_errors(&f);
	ck_assert_uint_eq(f.distinct, 50);
	ck_assert_uint_eq(f.bad, 0);
	fx_done(&f);
}
END_TEST

START_TEST(wrong_token_is_refused_in_words)
{
	if (th_broker_needs_test_broker("the test broker's --token and --tls-cert"))
		return;
	char dir[512], ca[600];
	struct fx f;

	tls_broker(&f, dir, sizeof(dir));
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	fx_client(&f, NULL, "not-the-token", ca, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/secure");
	start_producer(&f, DN_DISPATCH_RELIABLE, 0, 1);
	send_seq(&f, 0, NULL);
	expect_seqs(&f, 1);
	ck_assert(run_until(&f, prod_failed, 15000));
	ck_assert_int_eq(f.prod_err_code, DN_UNAUTHENTICATED);
	ck_assert_msg(strstr(f.prod_err, "UNAUTHENTICATED") != NULL, "%s", f.prod_err);
	ck_assert_msg(strstr(f.prod_err, "/default/secure") != NULL, "%s", f.prod_err);
	ck_assert_msg(strstr(f.prod_err, "token") != NULL, "%s", f.prod_err);
	/* The queued message fails with the same sentence rather than hanging. */
	ck_assert(run_until(&f, send_settled, 5000));
	ck_assert_uint_eq(f.send_failed, 1);
	ck_assert_int_eq(f.last_code, DN_UNAUTHENTICATED);
	fx_done(&f);
}
END_TEST

START_TEST(oversized_message_is_refused_clearly)
{
	size_t big = 5u * 1024 * 1024;
	char *payload = malloc(big);
	struct fx f;

	ck_assert_ptr_nonnull(payload);
	memset(payload, 'z', big);
	fx_init(&f, NULL);
	/* Our own limit (4 MiB) refuses at once... */
	fx_client(&f, NULL, NULL, NULL, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/big");
	start_producer(&f, DN_DISPATCH_RELIABLE, 0, 1);
	ck_assert(run_until(&f, prod_is_ready, 10000));
	ck_assert_int_eq(dn_producer_send(f.prod, payload, big, NULL, 0, NULL, sent_cb, &f),
			 -EMSGSIZE);
	dn_producer_close(f.prod);
	f.prod = NULL;
	dn_client_free(f.client);
	dc_grpc_shutdown_all(); /* the next client gets its own connection and limit */
	/* ...and with a raised client limit the broker's 4 MiB limit answers, in words. */
	f.prod_ready = false;
	fx_client(&f, NULL, NULL, NULL, 16u * 1024 * 1024);
	start_producer(&f, DN_DISPATCH_RELIABLE, 0, 1);
	ck_assert(run_until(&f, prod_is_ready, 10000));
	ck_assert_int_eq(dn_producer_send(f.prod, payload, big, NULL, 0, NULL, sent_cb, &f), 0);
	f.sent++;
	ck_assert(run_until(&f, send_settled, 15000));
	ck_assert_uint_eq(f.send_failed, 1);
	ck_assert_msg(f.last_code == DN_OUT_OF_RANGE, "%s", f.last_error);
	ck_assert_msg(strstr(f.last_error, "OUT_OF_RANGE") != NULL, "%s", f.last_error);
	ck_assert_msg(strstr(f.last_error, "/default/big") != NULL, "%s", f.last_error);
	/* The producer still works for messages of a sane size. */
	expect_seqs(&f, 1);
	send_seq(&f, 0, NULL);
	ck_assert(run_until(&f, send_settled, 10000));
	ck_assert_uint_eq(f.acked, 1);
	free(payload);
	fx_done(&f);
}
END_TEST

START_TEST(mismatched_dispatch_strategy_fails_clearly)
{
	struct fx f;

	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/strict");
	admin(&f, "create-topic", f.topic, "--reliable", NULL);
	start_producer(&f, DN_DISPATCH_NON_RELIABLE, 0, 1);
	ck_assert(run_until(&f, prod_failed, 10000));
	ck_assert_int_eq(f.prod_err_code, DN_FAILED_PRECONDITION);
	ck_assert_msg(strstr(f.prod_err, "topic /default/strict: broker refused producer") != NULL,
		      "%s", f.prod_err);
	ck_assert_msg(strstr(f.prod_err, "dispatch strategy does not match") != NULL, "%s",
		      f.prod_err);
	ck_assert_msg(strstr(f.prod_err, "(FAILED_PRECONDITION)") != NULL, "%s", f.prod_err);
	ck_assert_int_eq(dn_producer_send(f.prod, "x", 1, NULL, 0, NULL, sent_cb, &f), -EPIPE);
	fx_done(&f);
}
END_TEST

/*
 * wait_for_topic: the consumer says once that the topic does not exist yet,
 * keeps trying, and subscribes when a producer has created it.
 */
START_TEST(consumer_waits_for_a_topic_that_does_not_exist_yet)
{
	struct fx f;

	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/later");
	expect_seqs(&f, 5);
	start_consumer_ev(&f, "s", DN_SUB_EXCLUSIVE, on_message, true);
	ck_assert(run_until(&f, has_waited, 10000));
	ck_assert_msg(f.cons_err[0] == '\0', "%s", f.cons_err);
	ck_assert_str_eq(f.wait_reason, "topic /default/later does not exist yet");
	ck_assert(!f.cons_ready);
	start_producer(&f, DN_DISPATCH_RELIABLE, 0, 1);
	ck_assert(run_until(&f, prod_is_ready, 10000));
	/* A new subscription starts at the latest offset: send once it exists. */
	ck_assert(run_until(&f, cons_is_ready, 20000));
	ck_assert_uint_eq(f.waited, 1);
	for (unsigned long i = 0; i < 5; i++)
		send_seq(&f, i, NULL);
	ck_assert(run_until(&f, all_received, 15000));
	ck_assert_uint_eq(f.bad, 0);
	ck_assert_uint_eq(f.order_errors, 0);
	ck_assert_uint_eq(f.gaps, 0);
	assert_no_errors(&f);
	fx_done(&f);
}
END_TEST

/*
 * A consumer more than the broker's live feed behind loses messages without
 * being told (the real broker: 256; the test broker with
 * --live-feed-capacity 8). The consumer holds its window of 10 unacked while
 * the rest is produced; after the acks, the jump in offsets is reported, and
 * what arrived plus what was skipped is everything.
 */
START_TEST(offsets_the_broker_skipped_are_reported)
{
	const char *args[] = {"--live-feed-capacity", "8", NULL};
	bool real = th_broker_is_real();
	unsigned long n = real ? 320 : 50;
	struct fx f;

	fx_init(&f, real ? NULL : args);
	fx_client(&f, NULL, NULL, NULL, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/laggy");
	expect_seqs(&f, n);
	start_producer(&f, DN_DISPATCH_RELIABLE, 0, 16);
	ck_assert(run_until(&f, prod_is_ready, 10000));
	f.hold_acks = true;
	start_consumer_ev(&f, "s", DN_SUB_EXCLUSIVE, on_message_held, false);
	ck_assert(run_until(&f, cons_is_ready, 10000));
	for (unsigned long i = 0; i < n; i++)
		send_seq(&f, i, NULL);
	ck_assert(run_until(&f, window_held, 15000));
	ck_assert_uint_eq(f.received, 10);
	release_held(&f);
	ck_assert(run_until(&f, gap_or_all, 15000));
	ck_assert_uint_ge(f.gaps, 1);
	ck_assert_uint_eq(f.gap_expected, 10);
	ck_assert_uint_gt(f.gap_got, 10);
	/*
	 * Every message arrived or was reported skipped. (The real broker once
	 * delivered a reported offset later after all: reported, not lost.)
	 */
	ck_assert_uint_le(f.distinct, n);
	ck_assert_uint_ge(f.distinct + f.skipped, n);
	if (!th_broker_is_real())
		ck_assert_uint_eq(f.distinct + f.skipped, n);
	ck_assert_uint_eq(f.bad, 0);
	assert_no_errors(&f);
	fx_done(&f);
}
END_TEST

START_TEST(consuming_an_unknown_topic_fails_clearly)
{
	struct fx f;

	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	snprintf(f.topic, sizeof(f.topic), "/default/nowhere");
	start_consumer(&f, "s", DN_SUB_SHARED, on_message);
	ck_assert(run_until(&f, cons_failed, 10000));
	ck_assert_int_eq(f.cons_err_code, DN_NOT_FOUND);
	ck_assert_msg(strstr(f.cons_err, "/default/nowhere") != NULL, "%s", f.cons_err);
	ck_assert_msg(strstr(f.cons_err, "NOT_FOUND") != NULL, "%s", f.cons_err);
	fx_done(&f);
}
END_TEST

/* Schema calls: each answer lands here, the test inspects it. */
struct schema_seen {
	int calls, code;
	uint64_t id;
	uint32_t version;
	char subject[64], type[32], def[128], error[512];
};

static void schema_cb(void *arg, int code, const char *error, const struct dn_schema *sc)
{
	struct schema_seen *ss = arg;

	ss->calls++;
	ss->code = code;
	snprintf(ss->error, sizeof(ss->error), "%s", error);
	if (sc != NULL) {
		ss->id = sc->id;
		ss->version = sc->version;
		snprintf(ss->subject, sizeof(ss->subject), "%s", sc->subject);
		snprintf(ss->type, sizeof(ss->type), "%s", sc->type);
		snprintf(ss->def, sizeof(ss->def), "%.*s", (int)sc->definition_len,
			 (const char *)sc->definition);
	}
}

static struct schema_seen *schema_wait_for;

static bool schema_answered(struct fx *f)
{
	return schema_wait_for->calls > 0;
}

static void await_schema(struct fx *f, struct schema_seen *ss)
{
	schema_wait_for = ss;
	ck_assert(run_until(f, schema_answered, 10000));
}

static void on_schema_message(void *arg, struct dn_message *m)
{
	struct fx *f = arg;

	f->received++;
	if (!m->has_schema || m->schema_version != 1)
		f->bad++;
	f->nacked_offset = m->schema_id;
	check_message(f, m);
	ck_assert_int_eq(dn_consumer_ack(f->cons, m, NULL, NULL), 0);
	dn_message_free(m);
}

START_TEST(schemas_register_fetch_and_travel_with_messages)
{
	const char *def = "{\"type\":\"object\"}";
	struct schema_seen reg = {0}, latest = {0}, byid = {0}, missing = {0};
	struct dn_producer_opts o = {
		.topic = "/default/typed",
		.name = "typed-producer",
		.dispatch = DN_DISPATCH_RELIABLE,
		.schema_subject = "orders",
	};
	struct fx f;

	fx_init(&f, NULL);
	fx_client(&f, NULL, NULL, NULL, 0);
	ck_assert_int_eq(dn_schema_register(f.client, "orders", "json_schema", def, strlen(def),
					    schema_cb, &reg),
			 0);
	await_schema(&f, &reg);
	ck_assert_msg(reg.code == DN_OK, "%s", reg.error);
	ck_assert_uint_eq(reg.version, 1);
	ck_assert_int_eq(dn_schema_get_latest(f.client, "orders", schema_cb, &latest), 0);
	await_schema(&f, &latest);
	ck_assert_msg(latest.code == DN_OK, "%s", latest.error);
	ck_assert_uint_eq(latest.id, reg.id);
	ck_assert_str_eq(latest.subject, "orders");
	/*
	 * The real broker answers with its own JSON of the definition,
	 * {"JsonSchema":{"raw_schema":"...","fingerprint":"sha256:..."}}.
	 */
	if (th_broker_is_real())
		ck_assert_msg(strncmp(latest.def, "{\"JsonSchema\":{\"raw_schema\":", 28) == 0,
			      "%s", latest.def);
	else
		ck_assert_str_eq(latest.def, def);
	ck_assert_int_eq(dn_schema_get(f.client, reg.id, 1, schema_cb, &byid), 0);
	await_schema(&f, &byid);
	ck_assert_msg(byid.code == DN_OK, "%s", byid.error);
	ck_assert_str_eq(byid.type, "json_schema");
	ck_assert_int_eq(dn_schema_get_latest(f.client, "nope", schema_cb, &missing), 0);
	await_schema(&f, &missing);
	ck_assert_int_eq(missing.code, DN_NOT_FOUND);
	ck_assert_msg(strstr(missing.error, "schema nope") != NULL, "%s", missing.error);
	ck_assert_msg(strstr(missing.error, "(NOT_FOUND)") != NULL, "%s", missing.error);

	/* A producer bound to the subject stamps every message with (id, version). */
	snprintf(f.topic, sizeof(f.topic), "/default/typed");
	ck_assert_int_eq(dn_producer_new(f.client, &o, prod_ready, prod_error, &f, &f.prod), 0);
	ck_assert(run_until(&f, prod_is_ready, 10000));
	start_consumer(&f, "typed-sub", DN_SUB_EXCLUSIVE, on_schema_message);
	ck_assert(run_until(&f, cons_is_ready, 10000));
	expect_seqs(&f, 5);
	for (unsigned long i = 0; i < 5; i++)
		send_seq(&f, i, NULL);
	ck_assert(run_until(&f, all_received, 10000));
	assert_no_errors(&f);
	ck_assert_uint_eq(f.bad, 0);
	ck_assert_uint_eq(f.nacked_offset, reg.id);
	fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------- proxy mode */

/* The broker's --headers-log ("METHOD VALUE" per distinct x-danube-broker-url) and what to await.
 */
static char hdr_log[512];
static char hdr_want[512];

static bool hdr_logged(struct fx *f)
{
	char *log = th_read_file(hdr_log);
	bool yes = log != NULL && strstr(log, hdr_want) != NULL;

	free(log);
	return yes || f->bad > 0;
}

static bool all_settled(struct fx *f)
{
	return (all_received(f) && all_acked(f)) || prod_failed(f) || cons_failed(f);
}

/*
 * Produce and consume n reliable messages (the first one nacked, then
 * acked) with the broker recording the x-danube-broker-url it receives.
 */
static void headers_run(struct fx *f, unsigned long n)
{
	snprintf(f->topic, sizeof(f->topic), "/default/proxied");
	fx_client(f, NULL, NULL, NULL, 0);
	admin(f, "create-topic", f->topic, "--reliable", NULL);
	start_producer(f, DN_DISPATCH_RELIABLE, 0, 4);
	ck_assert(run_until(f, prod_is_ready, 10000));
	start_consumer(f, "proxy-sub", DN_SUB_EXCLUSIVE, on_nack_first);
	ck_assert(run_until(f, cons_is_ready, 10000));
	assert_no_errors(f);
	expect_seqs(f, n);
	for (unsigned long i = 0; i < n; i++)
		send_seq(f, i, NULL);
	ck_assert(run_until(f, all_settled, 15000));
	assert_no_errors(f);
	ck_assert_uint_eq(f->bad, 0);
	ck_assert_uint_eq(f->distinct, n);
	ck_assert(f->redelivered);
}

START_TEST(proxy_mode_sends_the_broker_url_header)
{
	if (th_broker_needs_test_broker("the test broker's --connect-url and --headers-log"))
		return;
	static const char *const methods[] = {"CreateProducer",  "SendMessage", "Subscribe",
					      "ReceiveMessages", "Nack",        "Ack",
					      "HealthCheck"};
	char port[16], connect_url[64], value[128];
	const char *args[7];
	char *log;
	struct fx f;
	int p = th_free_port();

	/* The same broker under another name: the client connects there and is in proxy mode. */
	snprintf(port, sizeof(port), "%d", p);
	snprintf(connect_url, sizeof(connect_url), "http://localhost:%d", p);
	snprintf(hdr_log, sizeof(hdr_log), "%s/headers.log", th_tmpdir());
	args[0] = "--port";
	args[1] = port;
	args[2] = "--connect-url";
	args[3] = connect_url;
	args[4] = "--headers-log";
	args[5] = hdr_log;
	args[6] = NULL;
	fx_init(&f, args);
	ck_assert_int_eq(th_broker_port(f.broker), p);
	headers_run(&f, 5);
	/* The identity is the broker's own URL, in Rust's Uri form (trailing '/'). */
	snprintf(value, sizeof(value), "%s/", th_broker_url(f.broker));
	/* HealthCheck runs every 5 s after Subscribe/CreateProducer. */
	snprintf(hdr_want, sizeof(hdr_want), "HealthCheck %s\n", value);
	ck_assert(run_until(&f, hdr_logged, 10000));
	log = th_read_file(hdr_log);
	ck_assert_ptr_nonnull(log);
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char line[256];

		snprintf(line, sizeof(line), "%s %s\n", methods[i], value);
		ck_assert_msg(strstr(log, line) != NULL, "no '%s %s' in the headers log:\n%s",
			      methods[i], value, log);
	}
	ck_assert_msg(strstr(log, "TopicLookup") == NULL, "sent on TopicLookup:\n%s", log);
	ck_assert_msg(strstr(log, "TopicPartitions") == NULL, "sent on TopicPartitions:\n%s", log);
	free(log);
	fx_done(&f);
}
END_TEST

START_TEST(no_broker_url_header_without_a_proxy)
{
	if (th_broker_needs_test_broker("the test broker's --headers-log"))
		return;
	const char *args[3];
	char *log;
	struct fx f;

	snprintf(hdr_log, sizeof(hdr_log), "%s/headers.log", th_tmpdir());
	args[0] = "--headers-log";
	args[1] = hdr_log;
	args[2] = NULL;
	fx_init(&f, args);
	headers_run(&f, 5);
	log = th_read_file(hdr_log);
	/* The broker creates the file at start; every call above was answered, so it saw them all.
	 */
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(log[0] == '\0', "header sent without a proxy:\n%s", log);
	free(log);
	fx_done(&f);
}
END_TEST

/* Custom metadata is checked before anything is sent. */
START_TEST(bad_call_headers_are_refused)
{
	static const uint8_t req[1] = {0};
	static const char *const upper[] = {"X-Danube-Broker-Url", "v", NULL};
	static const char *const pseudo[] = {":path", "/x", NULL};
	static const char *const reserved[] = {"x-ok", "1", "grpc-timeout", "1S", NULL};
	static const char *const ours[] = {"authorization", "Bearer x", NULL};
	static const char *const crlf[] = {"x-a", "1\r\nx-b: 2", NULL};
	static const char *const novalue[] = {"x-a", NULL};
	const char *many[2 * (DC_GRPC_MAX_HEADERS + 1) + 1];
	const char *const *bad[] = {upper, pseudo, reserved, ours, crlf, novalue, many};
	struct dc_grpc_opts o = {.url = "http://127.0.0.1:9"};
	struct dc_grpc_conn *conn;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);

	ck_assert_ptr_nonnull(loop);
	for (size_t i = 0; i < 2 * (DC_GRPC_MAX_HEADERS + 1); i += 2) {
		many[i] = "x-a";
		many[i + 1] = "1";
	}
	many[2 * (DC_GRPC_MAX_HEADERS + 1)] = NULL;
	ck_assert_int_eq(dc_grpc_conn_get(loop, &o, &conn), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(dc_grpc_call_start_hdr(conn, "/a.B/C", bad[i], req, 1, 0, NULL,
						     sent_cb, NULL, NULL) == -EINVAL,
			      "header set %zu accepted", i);
	dc_grpc_shutdown_all();
	ev_loop_destroy(loop);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

/* One case per test, so CK_RUN_CASE=unload runs one of them. */
static Suite *suite(void)
{
	Suite *s = suite_create("client");

	add(s, "bulk", reliable_messages_arrive_intact_and_in_order_per_partition);
	add(s, "routing", key_routing_lands_each_key_on_its_fnv1a_partition);
	add(s, "nack", nack_redelivers_the_message);
	add(s, "unload", topic_unload_mid_stream_loses_nothing);
	add(s, "restart", broker_kill_and_restart_mid_stream_loses_nothing);
	add(s, "tls", tls_and_token_work);
	add(s, "token", wrong_token_is_refused_in_words);
	add(s, "oversize", oversized_message_is_refused_clearly);
	add(s, "strategy", mismatched_dispatch_strategy_fails_clearly);
	add(s, "unknown", consuming_an_unknown_topic_fails_clearly);
	add(s, "wait", consumer_waits_for_a_topic_that_does_not_exist_yet);
	add(s, "gap", offsets_the_broker_skipped_are_reported);
	add(s, "schema", schemas_register_fetch_and_travel_with_messages);
	add(s, "proxy", proxy_mode_sends_the_broker_url_header);
	add(s, "noproxy", no_broker_url_header_without_a_proxy);
	add(s, "badhdr", bad_call_headers_are_refused);
	return s;
}

TH_MAIN(suite)

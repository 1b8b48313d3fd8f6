/*
 * The benchmark driver for our Danube client: a producer keeping a window of sends in flight,
 * or a consumer draining a stream; prints one RESULT line in peer_producer's format.
 */
#include "danube/client.h"
#include "h2/grpc.h"
#include "log.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <syslog.h>
#include <time.h>

enum role { ROLE_PRODUCE, ROLE_CONSUME };
enum phase { PHASE_STARTING, PHASE_WARMUP, PHASE_MEASURE, PHASE_DONE };

struct opts {
	enum role role;
	const char *url;
	const char *topic;
	size_t window;
	size_t messages;
	size_t warmup;
	size_t size;
	bool ack;
	double timeout_s;
};

struct bench {
	const struct opts *o;
	struct ev_loop *loop;
	struct dn_client *client;
	struct dn_producer *prod;
	struct dn_consumer *cons;
	uint8_t *payload;
	enum phase phase;
	size_t target;  /* messages in the current phase */
	size_t started; /* producer: sends queued in this phase */
	size_t done;    /* producer: acknowledged; consumer: received */
	size_t acked;   /* consumer: acks answered */
	double t0, c0, s0, t1, c1, s1;
	int status;
	ev_timer deadline;
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU of the whole process, as for the gRPC C++ peer (which has helper threads). */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The kernel's share of it (sockets, polling): shows how much is left to our own code. */
static double sys_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0.0;
	return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void bench_fail(struct bench *b, const char *what, const char *error)
{
	if (b->phase == PHASE_DONE)
		return;
	fprintf(stderr, "dn_bench: %s: %s\n", what, error);
	b->status = 1;
	b->phase = PHASE_DONE;
	ev_break(b->loop, EVBREAK_ALL);
}

static void measure_start(struct bench *b)
{
	b->phase = PHASE_MEASURE;
	b->t0 = mono_s();
	b->c0 = cpu_s();
	b->s0 = sys_s();
}

static void measure_end(struct bench *b)
{
	b->t1 = mono_s();
	b->c1 = cpu_s();
	b->s1 = sys_s();
	b->phase = PHASE_DONE;
	ev_break(b->loop, EVBREAK_ALL);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bench *b = w->data;
	char msg[256];

	if (b->phase == PHASE_STARTING)
		snprintf(msg, sizeof(msg), "%s on %s not ready after %.0f s",
			 b->o->role == ROLE_PRODUCE ? "producer" : "consumer", b->o->url,
			 b->o->timeout_s);
	else
		snprintf(msg, sizeof(msg), "not finished after %.0f s (%zu of %zu messages)",
			 b->o->timeout_s, b->done, b->target);
	bench_fail(b, "timeout", msg);
}

/* ---------------------------------------------------------------- producer */

static void produce_fill(struct bench *b);

static void phase_start(struct bench *b, enum phase phase, size_t count)
{
	b->target = count;
	b->started = 0;
	b->done = 0;
	if (phase == PHASE_MEASURE)
		measure_start(b);
	else
		b->phase = phase;
	produce_fill(b);
}

static void sent_cb(void *arg, int code, const char *error)
{
	struct bench *b = arg;

	if (b->phase == PHASE_DONE)
		return; /* cancelled at close */
	if (code != DN_OK) {
		bench_fail(b, "send", error);
		return;
	}
	if (++b->done < b->target) {
		produce_fill(b);
		return;
	}
	if (b->phase == PHASE_WARMUP)
		phase_start(b, PHASE_MEASURE, b->o->messages);
	else
		measure_end(b);
}

/* Keeps exactly window messages in the producer, as peer_producer keeps window calls. */
static void produce_fill(struct bench *b)
{
	while (b->phase != PHASE_DONE && b->started < b->target &&
	       b->started - b->done < b->o->window) {
		int rc = dn_producer_send(b->prod, b->payload, b->o->size, NULL, 0, NULL, sent_cb,
					  b);

		if (rc != 0) {
			bench_fail(b, "dn_producer_send", strerror(-rc));
			return;
		}
		b->started++;
	}
}

static void producer_ready(void *arg)
{
	struct bench *b = arg;

	if (b->o->warmup > 0)
		phase_start(b, PHASE_WARMUP, b->o->warmup);
	else
		phase_start(b, PHASE_MEASURE, b->o->messages);
}

static void client_error(void *arg, int code, const char *error)
{
	bench_fail(arg, "client", error);
}

static int produce_setup(struct bench *b)
{
	struct dn_producer_opts po = {
		.topic = b->o->topic,
		.name = "dn-bench",
		.dispatch = DN_DISPATCH_NON_RELIABLE,
		.max_inflight = (uint32_t)b->o->window,
	};

	b->payload = malloc(b->o->size ? b->o->size : 1);
	if (b->payload == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < b->o->size; i++)
		b->payload[i] = (uint8_t)('a' + i % 26);
	return dn_producer_new(b->client, &po, producer_ready, client_error, b, &b->prod);
}

/* ---------------------------------------------------------------- consumer */

static void consume_check_end(struct bench *b)
{
	if (b->done == b->target && (!b->o->ack || b->acked == b->target))
		measure_end(b);
}

static void acked_cb(void *arg, int code, const char *error)
{
	struct bench *b = arg;

	if (b->phase == PHASE_DONE)
		return;
	if (code != DN_OK) {
		bench_fail(b, "ack", error);
		return;
	}
	b->acked++;
	consume_check_end(b);
}

static void message_cb(void *arg, struct dn_message *msg)
{
	struct bench *b = arg;
	char err[160];

	if (b->phase == PHASE_DONE || b->done == b->target) {
		dn_message_free(msg);
		return;
	}
	if (b->phase == PHASE_STARTING)
		measure_start(b);
	/* The peer streams offsets 0..N-1 of one size: anything else is a client bug. */
	if (msg->offset != b->done || msg->payload_len != b->o->size) {
		snprintf(err, sizeof(err),
			 "message %zu: offset %" PRIu64
			 ", %zu bytes; expected offset %zu, %zu bytes",
			 b->done, msg->offset, msg->payload_len, b->done, b->o->size);
		dn_message_free(msg);
		bench_fail(b, "consume", err);
		return;
	}
	b->done++;
	if (b->o->ack) {
		int rc = dn_consumer_ack(b->cons, msg, acked_cb, b);

		if (rc != 0) {
			dn_message_free(msg);
			bench_fail(b, "dn_consumer_ack", strerror(-rc));
			return;
		}
	}
	dn_message_free(msg);
	consume_check_end(b);
}

static void consumer_ready(void *arg)
{
	struct bench *b = arg;

	if (b->phase == PHASE_STARTING)
		measure_start(b);
}

static int consume_setup(struct bench *b)
{
	struct dn_consumer_opts co = {
		.topic = b->o->topic,
		.name = "dn-bench",
		.subscription = "bench",
		.type = DN_SUB_SHARED,
	};

	b->target = b->o->messages;
	return dn_consumer_new(b->client, &co, consumer_ready, message_cb, client_error, b,
			       &b->cons);
}

/* ------------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fprintf(f, "usage: dn_bench produce -u URL [-w WINDOW] [-n MESSAGES] [-W WARMUP] "
		   "[-s PAYLOAD_BYTES] [-t TOPIC] [-T TIMEOUT_S]\n"
		   "       dn_bench consume -u URL [-n MESSAGES] [-s PAYLOAD_BYTES] [-t TOPIC] "
		   "[-a] [-T TIMEOUT_S]\n"
		   "Prints one RESULT line: messages/s and process CPU microseconds per message.\n"
		   "consume expects the peer's stream (offsets 0.., PAYLOAD_BYTES each); -a acks "
		   "each message.\n");
}

static bool parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return false;
	*out = (size_t)v;
	return true;
}

static bool parse_args(int argc, char **argv, struct opts *o)
{
	size_t timeout = 120;
	int c;

	if (argc < 2)
		return false;
	if (strcmp(argv[1], "produce") == 0)
		o->role = ROLE_PRODUCE;
	else if (strcmp(argv[1], "consume") == 0)
		o->role = ROLE_CONSUME;
	else
		return false;
	optind = 2;
	while ((c = getopt(argc, argv, "u:w:n:W:s:t:aT:")) != -1) {
		bool ok = true;

		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 'w':
			ok = parse_size(optarg, &o->window) && o->window > 0 &&
			     o->window <= UINT32_MAX;
			break;
		case 'n':
			ok = parse_size(optarg, &o->messages) && o->messages > 0;
			break;
		case 'W':
			ok = parse_size(optarg, &o->warmup);
			break;
		case 's':
			ok = parse_size(optarg, &o->size);
			break;
		case 't':
			o->topic = optarg;
			break;
		case 'a':
			o->ack = true;
			break;
		case 'T':
			ok = parse_size(optarg, &timeout) && timeout > 0;
			break;
		default:
			ok = false;
		}
		if (!ok)
			return false;
	}
	o->timeout_s = (double)timeout;
	return optind == argc && o->url != NULL;
}

static void print_result(const struct bench *b)
{
	const struct opts *o = b->o;
	double wall = b->t1 - b->t0, cpu = b->c1 - b->c0, sys = b->s1 - b->s0;

	if (o->role == ROLE_PRODUCE)
		printf("RESULT client=danube-c role=producer window=%zu", o->window);
	else
		printf("RESULT client=danube-c role=consumer ack=%d", o->ack ? 1 : 0);
	printf(" size=%zu msgs=%zu wall_s=%.3f cpu_s=%.3f msgs_per_s=%.0f cpu_us_per_msg=%.2f "
	       "sys_us_per_msg=%.2f\n",
	       o->size, o->messages, wall, cpu, (double)o->messages / wall,
	       cpu * 1e6 / (double)o->messages, sys * 1e6 / (double)o->messages);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct opts o = {
		.topic = "/default/bench",
		.window = 1,
		.messages = 10000,
		.size = 1024,
	};
	struct dn_client_opts copts = {0};
	struct bench b = {.o = &o, .status = 0};
	int rc;

	if (!parse_args(argc, argv, &o)) {
		usage(stderr);
		return 64;
	}
	dc_log_open("dn_bench", LOG_USER, false, true);
	dc_log_set_level(DC_LOG_WARN);
	b.loop = ev_default_loop(0);
	if (b.loop == NULL) {
		fprintf(stderr, "dn_bench: cannot create the event loop\n");
		return 1;
	}
	copts.service_url = o.url;
	rc = dn_client_new(b.loop, &copts, &b.client);
	if (rc != 0) {
		fprintf(stderr, "dn_bench: client for %s: %s\n", o.url, strerror(-rc));
		return 1;
	}
	rc = o.role == ROLE_PRODUCE ? produce_setup(&b) : consume_setup(&b);
	if (rc != 0) {
		fprintf(stderr, "dn_bench: %s on %s: %s\n",
			o.role == ROLE_PRODUCE ? "producer" : "consumer", o.topic, strerror(-rc));
		b.status = 1;
	} else {
		ev_timer_init(&b.deadline, deadline_cb, o.timeout_s, 0.0);
		b.deadline.data = &b;
		ev_timer_start(b.loop, &b.deadline);
		ev_run(b.loop, 0);
		ev_timer_stop(b.loop, &b.deadline);
		if (b.status == 0)
			print_result(&b);
	}

	/* Sends still pending are cancelled into sent_cb, which ignores them once done. */
	b.phase = PHASE_DONE;
	if (b.prod != NULL)
		dn_producer_close(b.prod);
	if (b.cons != NULL)
		dn_consumer_close(b.cons);
	dn_client_free(b.client);
	dc_grpc_shutdown_all();
	free(b.payload);
	dc_log_close();
	return b.status;
}

/*
 * echo-source: a test source on the connector runtime. It emits [echo] count
 * records "PREFIX-I" (I from 1) with attributes seq=I and src=echo, token I,
 * as fast as the runtime takes them, and logs "echo paused", "echo resumed"
 * and "echo committed TOKEN" so a test can see backpressure and commits.
 *
 * [echo] keys: count (default 10), prefix (default "rec"), topic (default:
 * [danube] topic), routing_key (none by default), big_seq (record I gets a
 * 5 MiB payload, more than Danube takes; 0 = none), ignore_pause (keep
 * submitting while paused, as a source with data already in hand does).
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime/connector.h"

/* clang-format off */
static const struct dc_cfg_key echo_keys[] = {
	{.section = "echo", .key = "count", .type = DC_CFG_INT, .def = "10", .max = 100000000},
	{.section = "echo", .key = "prefix", .type = DC_CFG_STRING, .def = "rec"},
	{.section = "echo", .key = "topic", .type = DC_CFG_STRING},
	{.section = "echo", .key = "routing_key", .type = DC_CFG_STRING},
	{.section = "echo", .key = "big_seq", .type = DC_CFG_INT, .def = "0", .max = 100000000},
	{.section = "echo", .key = "ignore_pause", .type = DC_CFG_BOOL, .def = "false"},
};
/* clang-format on */
static const struct dc_cfg_table echo_table = DC_CFG_TABLE(echo_keys);

#define BIG_LEN (5u << 20)

struct echo {
	struct dc_rt *rt;
	ev_idle emit_w;
	int64_t count, next, big_seq;
	char *big;
	const char *prefix, *topic, *routing_key;
	bool paused, ignore_pause;
};

static void emit(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct echo *e = w->data;
	char payload[256], seq[24];
	struct dn_attr attrs[2] = {{"seq", seq}, {"src", "echo"}};
	struct dc_record r = {0};
	int rc;

	/* A bounded burst per loop pass keeps the loop serving I/O. */
	for (int i = 0; i < 100 && e->next <= e->count && (!e->paused || e->ignore_pause); i++) {
		snprintf(payload, sizeof(payload), "%s-%lld", e->prefix, (long long)e->next);
		snprintf(seq, sizeof(seq), "%lld", (long long)e->next);
		r.payload = payload;
		r.len = strlen(payload);
		if (e->next == e->big_seq) {
			r.payload = e->big;
			r.len = BIG_LEN;
		}
		r.attrs = attrs;
		r.nattrs = 2;
		r.topic = e->topic;
		r.routing_key = e->routing_key;
		r.token = (uint64_t)e->next;
		rc = dc_rt_submit(e->rt, &r);
		if (rc != 0) {
			dc_log_error("echo: submit failed: %s", strerror(-rc));
			ev_idle_stop(loop, w);
			return;
		}
		e->next++;
	}
	if (e->next > e->count || (e->paused && !e->ignore_pause))
		ev_idle_stop(loop, w);
}

static int echo_open(struct dc_rt *rt, const struct dc_config *cfg, void *state,
		     struct dc_diag *diag)
{
	struct echo *e = state;

	e->rt = rt;
	e->count = dc_config_int(cfg, "echo", "count");
	e->prefix = dc_config_str(cfg, "echo", "prefix");
	e->topic = dc_config_str(cfg, "echo", "topic");
	e->routing_key = dc_config_str(cfg, "echo", "routing_key");
	e->next = 1;
	e->big_seq = dc_config_int(cfg, "echo", "big_seq");
	e->ignore_pause = dc_config_bool(cfg, "echo", "ignore_pause");
	if (strchr(e->prefix, '\n')) {
		dc_diag_add(diag, "%s: prefix must not contain a newline",
			    dc_config_where(cfg, "echo", "prefix"));
		return -1;
	}
	ev_idle_init(&e->emit_w, emit);
	e->emit_w.data = e;
	return e->big_seq > 0 && !(e->big = calloc(1, BIG_LEN)) ? -1 : 0;
}

static int echo_start(void *state)
{
	struct echo *e = state;

	dc_rt_external_up(e->rt);
	ev_idle_start(dc_rt_loop(e->rt), &e->emit_w);
	return 0;
}

static void echo_pause(void *state)
{
	struct echo *e = state;

	e->paused = true;
	dc_log_info("echo paused at %lld", (long long)e->next);
}

static void echo_resume(void *state)
{
	struct echo *e = state;

	e->paused = false;
	dc_log_info("echo resumed at %lld", (long long)e->next);
	ev_idle_start(dc_rt_loop(e->rt), &e->emit_w);
}

static void echo_committed(void *state, uint64_t token)
{
	dc_log_info("echo committed %llu", (unsigned long long)token);
}

static void echo_stop(void *state)
{
	struct echo *e = state;

	e->paused = true;
	ev_idle_stop(dc_rt_loop(e->rt), &e->emit_w);
	dc_log_info("echo stopped at %lld", (long long)e->next);
}

static void echo_close(void *state)
{
	struct echo *e = state;

	/* A no-op on a watcher never started (--check opens and closes only). */
	ev_idle_stop(dc_rt_loop(e->rt), &e->emit_w);
	free(e->big);
}

DC_SOURCE_WORKER("echo-source", echo, &echo_table)

/*
 * collect-sink: a test sink on the connector runtime. It appends each OK
 * record's payload as a line to [collect] out_file, and answers by rule:
 * a payload containing fatal_contains -> FATAL; containing retry_contains ->
 * always RETRY; any other record RETRY on its first retry_first attempts.
 * With delay_ms the write completes that much later (a batch in flight).
 * Logs "collect batch N attempt A".
 *
 * [collect] keys: out_file (required), fatal_contains (default "poison"),
 * retry_contains (default "retry-forever"), retry_first (default 0),
 * delay_ms (default 0), down_contains (default "target-down": on its first
 * attempt such a record is RETRY and the sink reports its target down for
 * down_ms (default 500), then up; it is written on the next attempt). A
 * write while the target is down logs "collect: written while down".
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime/connector.h"

/* clang-format off */
static const struct dc_cfg_key collect_keys[] = {
	{.section = "collect", .key = "out_file", .type = DC_CFG_STRING, .flags = DC_CFG_REQUIRED},
	{.section = "collect", .key = "fatal_contains", .type = DC_CFG_STRING, .def = "poison"},
	{.section = "collect", .key = "retry_contains", .type = DC_CFG_STRING, .def = "retry-forever"},
	{.section = "collect", .key = "retry_first", .type = DC_CFG_INT, .def = "0", .max = 1000},
	{.section = "collect", .key = "delay_ms", .type = DC_CFG_DURATION, .def = "0"},
	{.section = "collect", .key = "down_contains", .type = DC_CFG_STRING, .def = "target-down"},
	{.section = "collect", .key = "down_ms", .type = DC_CFG_DURATION, .def = "500"},
};
/* clang-format on */
static const struct dc_cfg_table collect_table = DC_CFG_TABLE(collect_keys);

struct collect {
	struct dc_rt *rt;
	FILE *out;
	const char *path, *fatal, *retry, *down;
	int64_t retry_first, delay_ms, down_ms;
	bool is_down;
	ev_timer delay_w, up_w;
	struct dc_batch *batch;
};

static bool contains(const struct dn_message *m, const char *needle)
{
	return needle && *needle && memmem(m->payload, m->payload_len, needle, strlen(needle));
}

static void on_up(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct collect *c = w->data;

	c->is_down = false;
	dc_log_info("collect: target up");
	dc_rt_external_up(c->rt);
}

static void finish(struct collect *c, struct dc_batch *b)
{
	bool down = false;

	for (size_t i = 0; i < b->n; i++) {
		struct dc_sink_record *r = &b->records[i];
		const struct dn_message *m = r->msg;

		if (contains(m, c->down) && b->attempt == 0) {
			down = true;
			dc_rt_set_result(r, DC_WRITE_RETRY, "external", "target down");
		} else if (contains(m, c->fatal)) {
			dc_rt_set_result(r, DC_WRITE_FATAL, "invalid_data",
					 "payload contains \"%s\"", c->fatal);
		} else if (contains(m, c->retry) || b->attempt < (unsigned)c->retry_first) {
			dc_rt_set_result(r, DC_WRITE_RETRY, "external", "retry on attempt %u",
					 b->attempt);
		} else if (fwrite(m->payload, 1, m->payload_len, c->out) != m->payload_len ||
			   fputc('\n', c->out) == EOF) {
			dc_rt_set_result(r, DC_WRITE_RETRY, "external", "writing %s failed",
					 c->path);
		}
	}
	if (fflush(c->out) != 0)
		dc_log_warn("collect: flushing %s failed", c->path);
	if (down) {
		c->is_down = true;
		dc_rt_external_down(c->rt, "collect: target down");
		ev_timer_set(&c->up_w, (double)c->down_ms / 1000.0, 0.);
		ev_timer_start(dc_rt_loop(c->rt), &c->up_w);
	}
	dc_rt_write_done(c->rt, b);
}

static void on_delay(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct collect *c = w->data;
	struct dc_batch *b = c->batch;

	c->batch = NULL;
	finish(c, b);
}

static void collect_write(void *state, struct dc_batch *b)
{
	struct collect *c = state;

	dc_log_info("collect batch %zu attempt %u", b->n, b->attempt);
	if (c->is_down)
		dc_log_error("collect: written while down");
	if (c->delay_ms <= 0) {
		finish(c, b);
		return;
	}
	c->batch = b;
	ev_timer_set(&c->delay_w, (double)c->delay_ms / 1000.0, 0.);
	ev_timer_start(dc_rt_loop(c->rt), &c->delay_w);
}

static int collect_open(struct dc_rt *rt, const struct dc_config *cfg, void *state,
			struct dc_diag *diag)
{
	struct collect *c = state;

	c->rt = rt;
	c->path = dc_config_str(cfg, "collect", "out_file");
	c->fatal = dc_config_str(cfg, "collect", "fatal_contains");
	c->retry = dc_config_str(cfg, "collect", "retry_contains");
	c->retry_first = dc_config_int(cfg, "collect", "retry_first");
	c->delay_ms = dc_config_int(cfg, "collect", "delay_ms");
	c->down = dc_config_str(cfg, "collect", "down_contains");
	c->down_ms = dc_config_int(cfg, "collect", "down_ms");
	ev_timer_init(&c->delay_w, on_delay, 0., 0.);
	c->delay_w.data = c;
	ev_timer_init(&c->up_w, on_up, 0., 0.);
	c->up_w.data = c;
	if (c->path[0] != '/') {
		dc_diag_add(diag, "%s: out_file must be an absolute path",
			    dc_config_where(cfg, "collect", "out_file"));
		return -1;
	}
	return 0;
}

static int collect_start(void *state)
{
	struct collect *c = state;

	c->out = fopen(c->path, "a");
	if (!c->out) {
		dc_log_error("collect: cannot open %s: %m", c->path);
		return -1;
	}
	dc_rt_external_up(c->rt);
	return 0;
}

static void collect_close(void *state)
{
	struct collect *c = state;

	/* A no-op on a watcher never started (--check opens and closes only). */
	ev_timer_stop(dc_rt_loop(c->rt), &c->delay_w);
	ev_timer_stop(dc_rt_loop(c->rt), &c->up_w);
	if (c->out)
		fclose(c->out);
}

DC_SINK_WORKER("collect-sink", collect, &collect_table)

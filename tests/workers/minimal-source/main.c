/*
 * minimal-source: the smallest useful source on the connector runtime, and
 * the measure of what a new connector costs. It sends [minimal] count
 * records "1", "2", ... to [danube] topic, as fast as the runtime takes
 * them, and logs "minimal committed N" as the broker acknowledges them.
 */
#include <ev.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "runtime/connector.h"

/* clang-format off */
static const struct dc_cfg_key minimal_keys[] = {
	{.section = "minimal", .key = "count", .type = DC_CFG_INT, .def = "10", .max = 1000000000},
};
/* clang-format on */
static const struct dc_cfg_table minimal_table = DC_CFG_TABLE(minimal_keys);

struct minimal {
	struct dc_rt *rt;
	ev_idle emit_w;
	int64_t next, count;
};

static void emit(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct minimal *m = w->data;
	char payload[24];
	struct dc_record r = {.payload = payload};

	(void)revents;
	if (m->next > m->count) {
		ev_idle_stop(loop, w);
		return;
	}
	r.len = (size_t)snprintf(payload, sizeof(payload), "%lld", (long long)m->next);
	r.token = (uint64_t)m->next;
	if (dc_rt_submit(m->rt, &r) != 0) {
		ev_idle_stop(loop, w); /* only after stop(): the drain has begun */
		return;
	}
	m->next++;
}

static int minimal_open(struct dc_rt *rt, const struct dc_config *cfg, void *state,
			struct dc_diag *diag)
{
	struct minimal *m = state;

	(void)diag;
	m->rt = rt;
	m->next = 1;
	m->count = dc_config_int(cfg, "minimal", "count");
	ev_idle_init(&m->emit_w, emit);
	m->emit_w.data = m;
	return 0;
}

static int minimal_start(void *state)
{
	struct minimal *m = state;

	dc_rt_external_up(m->rt);
	ev_idle_start(dc_rt_loop(m->rt), &m->emit_w);
	return 0;
}

static void minimal_pause(void *state)
{
	struct minimal *m = state;

	ev_idle_stop(dc_rt_loop(m->rt), &m->emit_w);
}

static void minimal_resume(void *state)
{
	struct minimal *m = state;

	ev_idle_start(dc_rt_loop(m->rt), &m->emit_w);
}

static void minimal_committed(void *state, uint64_t token)
{
	(void)state;
	dc_log_info("minimal committed %llu", (unsigned long long)token);
}

static void minimal_stop(void *state)
{
	minimal_pause(state);
}

static void minimal_close(void *state)
{
	minimal_pause(state); /* a no-op on a watcher never started (--check) */
}

DC_SOURCE_WORKER("minimal-source", minimal, &minimal_table)

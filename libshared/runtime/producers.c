/*
 * The producer table: one Danube producer per topic, created on first use,
 * shared by the source's records and the dead-letter path (dlq.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime/internal.h"

static void on_producer_ready(void *arg)
{
	struct rt_producer *p = arg;

	p->ready = true;
	rt_danube_up(p->rt);
}

static void on_producer_error(void *arg, int code, const char *error)
{
	struct rt_producer *p = arg;

	rt_dependency_failed(p->rt, code, error);
}

struct rt_producer *rt_producer_get(struct dc_rt *rt, const char *topic)
{
	struct dn_producer_opts o = {0};
	const char *dispatch = dc_config_str(rt->cfg, "danube", "dispatch");
	struct rt_producer *p;
	int rc;

	for (p = rt->producers; p; p = p->next)
		if (strcmp(p->topic, topic) == 0)
			return p;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->topic = strdup(topic))) {
		free(p);
		dc_log_error("%s: out of memory creating a producer", topic);
		return NULL;
	}
	p->rt = rt;
	o.topic = topic;
	o.name = dc_config_str(rt->cfg, "danube", "producer_name");
	if (!o.name)
		o.name = rt->name;
	o.dispatch = dispatch && strcmp(dispatch, "reliable") == 0 ? DN_DISPATCH_RELIABLE
								   : DN_DISPATCH_NON_RELIABLE;
	o.partitions = (uint32_t)dc_config_int(rt->cfg, "danube", "partitions");
	/* One in flight per partition keeps the submission order on the wire. */
	o.max_inflight = 1;
	rc = dn_producer_new(rt->client, &o, on_producer_ready, on_producer_error, p, &p->p);
	if (rc != 0) {
		dc_log_error("%s: cannot create a producer: %s", topic, strerror(-rc));
		free(p->topic);
		free(p);
		return NULL;
	}
	p->next = rt->producers;
	rt->producers = p;
	return p;
}

void rt_producers_close(struct dc_rt *rt)
{
	struct rt_producer *p, *next;

	for (p = rt->producers; p; p = next) {
		next = p->next;
		dn_producer_close(p->p);
		free(p->topic);
		free(p);
	}
	rt->producers = NULL;
}

/*
 * The one dead-letter path of sources and sinks: on_error (fail, skip, dlq)
 * applied to a record that failed for good, and its copy on the DLQ topic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime/internal.h"

/* A DLQ copy in flight: the record's own buffers stay the caller's until done. */
struct dlq_send {
	struct dc_rt *rt;
	struct rt_dead d;
	char *why;
	/* It goes without the payload (the payload is what the broker refused). */
	bool stripped;
};

static int send_copy(struct dlq_send *s);

static void finish(struct dlq_send *s, enum rt_fate fate)
{
	s->d.done(s->d.arg, fate);
	free(s->why);
	free(s);
}

static void on_dlq_done(void *arg, int code, const char *error)
{
	struct dlq_send *s = arg;
	struct dc_rt *rt = s->rt;

	rt->dlq_pending--;
	if (code == DN_CANCELLED && rt->exit_code >= 0) {
		finish(s, RT_FATE_LOST);
		return;
	}
	/* Too large for the DLQ as well: the attributes still say what was lost. */
	if (code == DN_RESOURCE_EXHAUSTED && !s->stripped && s->d.msg.payload_len > 0) {
		s->stripped = true;
		if (send_copy(s) == 0)
			return;
	}
	if (code != DN_OK) {
		dc_rt_report_error(rt, s->d.msg.topic, "dlq", "cannot write to the DLQ %s: %s",
				   rt->dlq_topic, error);
		finish(s, RT_FATE_LOST);
		rt_fail(rt, DC_EXIT_FAILURE);
		return;
	}
	finish(s, RT_FATE_DLQ);
}

/*
 * Produces the copy with attributes saying why; 0 or -1. A record refused
 * for its size goes without its payload, with dlq.payload_omitted = its
 * length in bytes, rather than not at all.
 */
static int send_copy(struct dlq_send *s)
{
	const struct rt_dead *d = &s->d;
	struct rt_producer *p = rt_producer_get(s->rt, s->rt->dlq_topic);
	const struct dn_message *m = &d->msg;
	struct dn_attr *a = calloc(m->nattrs + 6, sizeof(*a));
	char attempts[24], omitted[24], offset[24];
	size_t n = 0;
	int rc = -EMSGSIZE;

	if (!p || !a) {
		free(a);
		return -1;
	}
	for (size_t i = 0; i < m->nattrs; i++)
		a[n++] = m->attrs[i];
	snprintf(attempts, sizeof(attempts), "%u", d->attempts);
	snprintf(omitted, sizeof(omitted), "%zu", m->payload_len);
	snprintf(offset, sizeof(offset), "%llu", (unsigned long long)m->offset);
	a[n++] = (struct dn_attr){"dlq.error", s->why};
	a[n++] = (struct dn_attr){"dlq.error_type", d->error_type};
	a[n++] = (struct dn_attr){"dlq.source_topic", m->topic};
	if (d->has_offset)
		a[n++] = (struct dn_attr){"dlq.offset", offset};
	a[n++] = (struct dn_attr){"dlq.attempts", attempts};
	if (!s->stripped)
		rc = dn_producer_send(p->p, m->payload, m->payload_len, a, n, m->routing_key,
				      on_dlq_done, s);
	if (rc == -EMSGSIZE) {
		s->stripped = true;
		a[n++] = (struct dn_attr){"dlq.payload_omitted", omitted};
		rc = dn_producer_send(p->p, "", 0, a, n, m->routing_key, on_dlq_done, s);
	}
	free(a);
	if (rc != 0)
		return -1;
	s->rt->dlq_pending++;
	return 0;
}

static int send_to_dlq(struct dc_rt *rt, const struct rt_dead *d, const char *why)
{
	struct dlq_send *s = calloc(1, sizeof(*s));

	if (!s || !(s->why = strdup(why))) {
		free(s);
		return -1;
	}
	s->rt = rt;
	s->d = *d;
	if (send_copy(s) != 0) {
		free(s->why);
		free(s);
		return -1;
	}
	return 0;
}

void rt_dead_letter(struct dc_rt *rt, const struct rt_dead *d, const char *why)
{
	switch (rt->on_error) {
	case RT_ON_ERROR_SKIP:
		d->done(d->arg, RT_FATE_SKIPPED);
		return;
	case RT_ON_ERROR_DLQ:
		if (send_to_dlq(rt, d, why) == 0)
			return;
		dc_log_error("%s: cannot send %s to the DLQ", d->msg.topic, d->what);
		break;
	case RT_ON_ERROR_FAIL:
		break;
	}
	d->done(d->arg, RT_FATE_LOST);
	rt_fail(rt, DC_EXIT_FAILURE);
}

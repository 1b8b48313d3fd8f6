/*
 * The life of one partition of a producer or consumer, written once: find
 * its broker, watch it with health checks, start over with backoff when it
 * is lost; and the guard that lets a user callback close the owner.
 */
#include "danube/internal.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dn_guard_enter(struct dn_guard *g)
{
	g->depth++;
}

void dn_guard_leave(struct dn_guard *g)
{
	if (--g->depth == 0 && g->closing)
		dn_guard_close(g);
}

void dn_guard_close(struct dn_guard *g)
{
	if (g->depth > 0) {
		g->closing = true;
		return;
	}
	/*
	 * Inside from now on: what the destroy finishes calls back, and a
	 * close or leave from there must not destroy again.
	 */
	g->depth++;
	g->destroy(g->owner);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dn_part *pt = w->data;

	dn_guard_enter(pt->guard);
	if (pt->ops->before_retry != NULL)
		pt->ops->before_retry(pt->arg);
	if (!pt->guard->closing && pt->state == DN_PART_BACKOFF)
		dn_part_start(pt);
	dn_guard_leave(pt->guard);
}

static void health_done(void *arg, int code, const char *message, void *resp)
{
	struct dn_part *pt = arg;
	char err[DN_ERRLEN];

	pt->health = NULL;
	/* A failed health call says nothing a send would not; only CLOSE acts. */
	if (code != DN_OK || !dn_health_is_close(resp) || pt->state != DN_PART_LIVE)
		return;
	dn_guard_enter(pt->guard);
	snprintf(err, sizeof(err), "topic %s: the broker closed %s %s (topic unloaded or moved)",
		 pt->topic, pt->consumer ? "consumer" : "producer", pt->name);
	pt->ops->lost(pt->arg, DN_UNAVAILABLE, err);
	dn_guard_leave(pt->guard);
}

static void health_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dn_part *pt = w->data;

	if (pt->health != NULL || pt->state != DN_PART_LIVE)
		return;
	if (dn_health_start(pt->c, pt->conn, pt->proxy, pt->consumer, pt->id, health_done, pt,
			    &pt->health) != 0)
		pt->health = NULL;
}

int dn_part_init(struct dn_part *pt, struct dn_client *c, struct dn_guard *g, const char *topic,
		 bool consumer, const char *name, const char *again, const struct dn_part_ops *ops,
		 void *arg)
{
	bool ok = true;

	pt->c = c;
	pt->guard = g;
	pt->ops = ops;
	pt->arg = arg;
	pt->consumer = consumer;
	pt->name = name;
	pt->again = again;
	pt->topic = dn_strdup(topic, &ok);
	/* Until a lookup answers, the service URL is the best guess. */
	pt->connect_url = dn_strdup(c->service_url, &ok);
	pt->broker_url = dn_strdup(c->service_url, &ok);
	dc_backoff_init(&pt->backoff, DN_BACKOFF_INITIAL_MS, DN_BACKOFF_MAX_MS, 0);
	ev_timer_init(&pt->retry_timer, retry_cb, 0.0, 0.0);
	pt->retry_timer.data = pt;
	ev_init(&pt->health_timer, health_cb);
	pt->health_timer.repeat = DN_HEALTH_INTERVAL_S;
	pt->health_timer.data = pt;
	return ok ? 0 : -ENOMEM;
}

void dn_part_stop(struct dn_part *pt)
{
	if (pt->c == NULL) /* never initialised */
		return;
	dn_op_cancel(pt->lookup);
	pt->lookup = NULL;
	dn_rpc_cancel(pt->health);
	pt->health = NULL;
	ev_timer_stop(pt->c->loop, &pt->retry_timer);
	ev_timer_stop(pt->c->loop, &pt->health_timer);
}

void dn_part_free(struct dn_part *pt)
{
	dn_part_stop(pt);
	free(pt->topic);
	free(pt->connect_url);
	free(pt->broker_url);
	free(pt->proxy);
}

/* Where the lookup says the topic is served; false (nothing changed) without memory. */
static bool set_target(struct dn_part *pt, const char *connect_url, const char *broker_url)
{
	bool ok = true;
	char *cu = dn_strdup(connect_url, &ok);
	char *bu = dn_strdup(broker_url, &ok);
	char *px = ok ? dn_proxy_value(cu, bu, &ok) : NULL;

	if (!ok) {
		free(cu);
		free(bu);
		free(px);
		return false;
	}
	free(pt->connect_url);
	free(pt->broker_url);
	free(pt->proxy);
	pt->connect_url = cu;
	pt->broker_url = bu;
	pt->proxy = px;
	return true;
}

static void lookup_done(void *arg, int code, const char *error, const struct dn_lookup_result *res)
{
	struct dn_part *pt = arg;

	pt->lookup = NULL;
	dn_guard_enter(pt->guard);
	/*
	 * Lookup errors are not final: a brand-new topic is unknown until
	 * CreateProducer creates it, so keep the last known broker; the
	 * attach call will tell.
	 */
	if (code == DN_OK)
		set_target(pt, res->connect_url, res->broker_url);
	else
		dc_log_debug("%s (trying %s anyway)", error, pt->connect_url);
	pt->ops->attach(pt->arg);
	dn_guard_leave(pt->guard);
}

void dn_part_start(struct dn_part *pt)
{
	pt->state = DN_PART_LOOKUP;
	if (dn_lookup_op(pt->c, pt->topic, lookup_done, pt, &pt->lookup) != 0) {
		pt->lookup = NULL;
		pt->ops->attach(pt->arg);
	}
}

int dn_part_connect(struct dn_part *pt)
{
	pt->state = DN_PART_ATTACHING;
	return dn_client_conn(pt->c, pt->connect_url, &pt->conn);
}

void dn_part_unreachable(struct dn_part *pt, int rc)
{
	char err[DN_ERRLEN];

	snprintf(err, sizeof(err), "topic %s: cannot reach broker %s: %s", pt->topic,
		 pt->connect_url, strerror(-rc));
	pt->ops->lost(pt->arg, DN_UNAVAILABLE, err);
}

void dn_part_live(struct dn_part *pt)
{
	pt->state = DN_PART_LIVE;
	ev_timer_again(pt->c->loop, &pt->health_timer);
}

void dn_part_backoff(struct dn_part *pt, const char *error)
{
	uint64_t delay;

	/* Warn when a working partition breaks; the retries that follow are debug noise. */
	if (pt->state == DN_PART_LIVE)
		dc_log_warn("%s; %s", error, pt->again);
	else
		dc_log_debug("%s; retrying", error);
	dn_part_stop(pt);
	pt->state = DN_PART_BACKOFF;
	delay = dc_backoff_next(&pt->backoff);
	ev_timer_set(&pt->retry_timer, (double)delay / 1000.0, 0.0);
	ev_timer_start(pt->c->loop, &pt->retry_timer);
}

void dn_part_fail(struct dn_part *pt)
{
	dn_part_stop(pt);
	pt->state = DN_PART_FAILED;
}

/*
 * The client's connection state for health: the broker connections it
 * handed out, what the gRPC layer said about each, and one up/down view.
 */
#include "danube/internal.h"
#include "clock.h"
#include "h2/grpc.h"

#include <stdlib.h>

static struct dn_conn_ref *ref_find(const struct dn_client *c, const struct dc_grpc_conn *conn)
{
	for (struct dn_conn_ref *r = c->conns; r != NULL; r = r->next)
		if (r->conn == conn)
			return r;
	return NULL;
}

/*
 * A connection nobody used for a while (its topics moved to another
 * broker) no longer holds the client down: producers and consumers touch
 * theirs at least every health interval, retries included.
 */
static bool ref_in_use(const struct dn_conn_ref *r, uint64_t now)
{
	return now - r->used_ms < DN_STATE_STALE_MS;
}

static void on_conn_state(void *arg, const struct dc_grpc_conn *conn, bool up, const char *reason)
{
	struct dn_client *c = arg;
	struct dn_conn_ref *r = ref_find(c, conn);
	uint64_t now = dc_now_ms();
	bool any_up = false, any_down = false;

	if (r == NULL)
		return;
	r->state = up ? DN_CONN_UP : DN_CONN_DOWN;
	if (!up && ref_in_use(r, now)) {
		c->told_up = false;
		c->state_fn(c->state_arg, false, reason);
		return;
	}
	/* Up once every connection in use is; a stale one's news may free the view too. */
	for (r = c->conns; r != NULL; r = r->next) {
		any_up = any_up || r->state == DN_CONN_UP;
		any_down = any_down || (r->state == DN_CONN_DOWN && ref_in_use(r, now));
	}
	if (any_up && !any_down && !c->told_up) {
		c->told_up = true;
		c->state_fn(c->state_arg, true, "");
	}
}

int dn_client_set_state_cb(struct dn_client *c, dn_state_fn fn, void *arg)
{
	int err;

	if (fn == NULL) {
		dn_state_free(c);
		return 0;
	}
	if (c->listener == NULL) {
		err = dc_grpc_state_listen(c->loop, on_conn_state, c, &c->listener);
		if (err != 0)
			return err;
	}
	c->state_fn = fn;
	c->state_arg = arg;
	return 0;
}

int dn_state_track(struct dn_client *c, const struct dc_grpc_conn *conn)
{
	struct dn_conn_ref *r;

	if (c->state_fn == NULL)
		return 0;
	r = ref_find(c, conn);
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return -ENOMEM;
		r->conn = conn;
		/* Known up already (shared with another client): no news will come. */
		r->state = dc_grpc_conn_is_up(conn) ? DN_CONN_UP : DN_CONN_UNKNOWN;
		r->next = c->conns;
		c->conns = r;
	}
	r->used_ms = dc_now_ms();
	return 0;
}

void dn_state_touch(struct dn_client *c, const struct dc_grpc_conn *conn)
{
	struct dn_conn_ref *r;

	if (c->state_fn == NULL)
		return;
	/* The usual case is one connection: the service URL is the broker's. */
	r = c->conns != NULL && c->conns->conn == conn ? c->conns : ref_find(c, conn);
	if (r != NULL)
		r->used_ms = dc_now_ms();
}

void dn_state_free(struct dn_client *c)
{
	struct dn_conn_ref *r, *next;

	dc_grpc_state_unlisten(c->listener);
	c->listener = NULL;
	c->state_fn = NULL;
	c->state_arg = NULL;
	for (r = c->conns; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
	c->conns = NULL;
	c->told_up = false;
}

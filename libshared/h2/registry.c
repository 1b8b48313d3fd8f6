/*
 * gRPC connection objects: URL parsing, the process-wide registry (one
 * connection per loop, URL, token and CA), and the state listeners.
 */
#include "h2/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_MSG (4u * 1024u * 1024u)

static struct dc_h2_link registry = {&registry, &registry};
static bool shutting_down;

struct dc_grpc_listener {
	struct dc_grpc_listener *prev, *next;
	struct ev_loop *loop;
	dc_grpc_state_fn fn;
	void *arg;
};
static struct dc_grpc_listener *listeners;

bool dc_h2_shutting_down(void)
{
	return shutting_down;
}

static void tell_listeners(struct dc_grpc_conn *conn, bool up, const char *reason)
{
	for (struct dc_grpc_listener *l = listeners, *next; l != NULL; l = next) {
		next = l->next;
		if (l->loop == conn->loop)
			l->fn(l->arg, conn, up, reason);
	}
}

/*
 * What changed since the listeners last heard: each loss or failed connect
 * (a short blip within one iteration is told as down, then up), and up.
 * A graceful retirement only forgets that up was told, so the next session
 * is told again.
 */
void dc_h2_conn_tell_state(struct dc_grpc_conn *conn)
{
	bool up = dc_grpc_conn_is_up(conn);
	bool lost = conn->downs != conn->downs_told;

	if (!lost && up == conn->up_told)
		return;
	conn->downs_told = conn->downs;
	if (lost)
		tell_listeners(conn, false, conn->down_reason);
	if (up && (lost || !conn->up_told))
		tell_listeners(conn, true, "");
	conn->up_told = up;
}

static int parse_url(struct dc_grpc_conn *conn, const char *url)
{
	const char *p, *end, *hs, *he, *colon = NULL;
	struct in6_addr a6;
	struct in_addr a4;

	if (strncmp(url, "http://", 7) == 0) {
		conn->tls = false;
		conn->scheme = "http";
		p = url + 7;
	} else if (strncmp(url, "https://", 8) == 0) {
		conn->tls = true;
		conn->scheme = "https";
		p = url + 8;
	} else {
		return -EINVAL;
	}
	end = p + strcspn(p, "/?#");
	if (end == p)
		return -EINVAL;
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(end - hs));
		if (he == NULL)
			return -EINVAL;
		if (he + 1 < end) {
			if (he[1] != ':')
				return -EINVAL;
			colon = he + 1;
		}
	} else {
		hs = p;
		colon = memchr(p, ':', (size_t)(end - p));
		he = colon ? colon : end;
	}
	if (he == hs)
		return -EINVAL;
	conn->host = strndup(hs, (size_t)(he - hs));
	conn->authority = strndup(p, (size_t)(end - p));
	if (colon != NULL) {
		char *e;
		long port = strtol(colon + 1, &e, 10);

		if (e != end || port <= 0 || port > 65535)
			return -EINVAL;
		conn->port = strndup(colon + 1, (size_t)(end - colon - 1));
	} else {
		conn->port = strdup(conn->tls ? "443" : "80");
	}
	if (conn->host == NULL || conn->authority == NULL || conn->port == NULL)
		return -ENOMEM;
	conn->host_is_ip = inet_pton(AF_INET, conn->host, &a4) == 1 ||
			   inet_pton(AF_INET6, conn->host, &a6) == 1;
	return 0;
}

static bool same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void conn_free(struct dc_grpc_conn *conn)
{
	dc_h2_conn_detach(conn, "the gRPC client is shutting down");
	free(conn->url);
	free(conn->token);
	free(conn->tls_ca);
	free(conn->host);
	free(conn->port);
	free(conn->authority);
	free(conn->auth_value);
	free(conn);
}

static int conn_new(struct ev_loop *loop, const struct dc_grpc_opts *opts,
		    struct dc_grpc_conn **out)
{
	struct dc_grpc_conn *conn = calloc(1, sizeof(*conn));
	int rv;

	if (conn == NULL)
		return -ENOMEM;
	conn->loop = loop;
	dc_h2_list_init(&conn->sessions);
	dc_h2_list_init(&conn->waiting);
	dc_h2_list_init(&conn->deferred);
	conn->url = strdup(opts->url);
	conn->token = opts->token ? strdup(opts->token) : NULL;
	conn->tls_ca = opts->tls_ca ? strdup(opts->tls_ca) : NULL;
	if (conn->url == NULL || (opts->token && !conn->token) || (opts->tls_ca && !conn->tls_ca)) {
		rv = -ENOMEM;
		goto fail;
	}
	rv = parse_url(conn, opts->url);
	if (rv != 0)
		goto fail;
	if (opts->token != NULL && opts->token[0]) {
		if (asprintf(&conn->auth_value, "Bearer %s", opts->token) < 0) {
			conn->auth_value = NULL;
			rv = -ENOMEM;
			goto fail;
		}
	}
	conn->max_msg = opts->max_msg_size ? opts->max_msg_size : DEFAULT_MAX_MSG;
	conn->keepalive_ms = opts->keepalive_ms ? opts->keepalive_ms : 10000;
	conn->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
	dc_h2_conn_attach(conn);
	*out = conn;
	return 0;

fail:
	conn_free(conn);
	return rv;
}

int dc_grpc_conn_get(struct ev_loop *loop, const struct dc_grpc_opts *opts,
		     struct dc_grpc_conn **out)
{
	struct dc_grpc_conn *conn;
	struct sigaction sa;
	int rv;

	if (loop == NULL || opts == NULL || opts->url == NULL || out == NULL)
		return -EINVAL;
	if (shutting_down)
		return -ESHUTDOWN;
	for (struct dc_h2_link *l = registry.next; l != &registry; l = l->next) {
		conn = DC_H2_CONTAINER(l, struct dc_grpc_conn, link);
		if (conn->loop == loop && same(conn->url, opts->url) &&
		    same(conn->token, opts->token) && same(conn->tls_ca, opts->tls_ca)) {
			*out = conn;
			return 0;
		}
	}
	/*
	 * OpenSSL writes to the socket with write(): a peer that went away
	 * would kill the process with SIGPIPE unless someone ignores it.
	 */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	rv = conn_new(loop, opts, &conn);
	if (rv != 0)
		return rv;
	dc_h2_list_add_tail(&registry, &conn->link);
	*out = conn;
	return 0;
}

void dc_grpc_shutdown_all(void)
{
	shutting_down = true;
	while (!dc_h2_list_empty(&registry)) {
		struct dc_grpc_conn *conn =
			DC_H2_CONTAINER(registry.next, struct dc_grpc_conn, link);

		dc_h2_list_del(&conn->link);
		conn_free(conn);
	}
	shutting_down = false;
}

int dc_grpc_conn_is_up(const struct dc_grpc_conn *conn)
{
	return conn != NULL && conn->sess != NULL && conn->sess->phase == DC_H2_UP;
}

const char *dc_grpc_conn_last_error(const struct dc_grpc_conn *conn)
{
	return conn != NULL ? conn->last_error : "";
}

int dc_grpc_state_listen(struct ev_loop *loop, dc_grpc_state_fn fn, void *arg,
			 struct dc_grpc_listener **out)
{
	struct dc_grpc_listener *l;

	if (out != NULL)
		*out = NULL;
	if (loop == NULL || fn == NULL || out == NULL)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	l->loop = loop;
	l->fn = fn;
	l->arg = arg;
	l->next = listeners;
	if (listeners != NULL)
		listeners->prev = l;
	listeners = l;
	*out = l;
	return 0;
}

void dc_grpc_state_unlisten(struct dc_grpc_listener *l)
{
	if (l == NULL)
		return;
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		listeners = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	free(l);
}

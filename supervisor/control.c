/*
 * The control socket: requests from danube-connectctl, answered on the loop
 * thread. The REP socket's receive fd is watched by an ev_io and drained
 * with NNG_FLAG_NONBLOCK, so no nng thread ever touches the worker table.
 */
#include "control.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "supd.h"

struct dc_control {
	struct dc_supd *sup;
	nng_socket sock;
	ev_io io;
	char *path;
};

/*
 * A request is an operation and a connector name; nng closes the connection
 * of a bigger one as soon as its length arrives, before reading or
 * allocating anything for it.
 */
#define MAX_REQUEST_BYTES 4096
/* danube-connectctl connects, asks once and goes: more at once than this are refused. */
#define MAX_CONNECTIONS 64

/*
 * Connections open now, counted on nng's threads. A file-scope counter and
 * not a member of struct dc_control, so that a pipe reaped after
 * dc_control_close() has nothing freed to touch.
 */
static atomic_int nconnections;

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)arg;
	/* Every pipe that saw ADD_PRE, refused or not, sees REM_POST once. */
	if (ev == NNG_PIPE_EV_ADD_PRE) {
		if (atomic_fetch_add(&nconnections, 1) >= MAX_CONNECTIONS)
			nng_pipe_close(p);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(&nconnections, 1);
	}
}

static void set_error(dcctl_Response *r, dcctl_Code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_error(dcctl_Response *r, dcctl_Code code, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	free(r->error);
	va_start(ap, fmt);
	if (vasprintf(&r->error, fmt, ap) < 0)
		r->error = NULL;
	va_end(ap);
}

static char *dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static int fill_status(dcctl_WorkerStatus *ws, const struct dc_worker *w)
{
	const dcctl_Health *h = w->last.has_health && w->pid != 0 ? &w->last.health : NULL;
	static const char *const hnames[] = {"starting", "ready", "degraded", "stopping"};
	const char *last_error = w->last_error;

	memset(ws, 0, sizeof(*ws));
	ws->pid = w->pid;
	ws->uptime_s = w->pid != 0 ? (dc_now_ms() - w->started_ms) / 1000 : 0;
	ws->restarts = w->restarts_total;
	if (w->last.has_health) {
		for (size_t i = 0; i < w->last.health.topics_count; i++) {
			const dcctl_TopicStats *t = &w->last.health.topics[i];

			ws->received += t->received;
			ws->processed += t->processed;
			ws->skipped += t->skipped;
			for (size_t k = 0; k < t->failed_count; k++)
				ws->failed += t->failed[k].count;
		}
		if (w->last.health.last_error != NULL && w->last.health.last_error[0] != '\0')
			last_error = w->last.health.last_error;
	}
	ws->name = dup_or_empty(w->spec.name);
	ws->type = dup_or_empty(w->spec.type);
	ws->state = dup_or_empty(dc_wstate_name(w->fsm.state));
	ws->last_error = dup_or_empty(last_error);
	ws->health = dup_or_empty(h != NULL && (unsigned)h->state < 4 ? hnames[h->state] : "");
	ws->reason = dup_or_empty(h != NULL ? h->reason : NULL);
	if (!ws->name || !ws->type || !ws->state || !ws->last_error || !ws->health || !ws->reason)
		return -ENOMEM;
	return 0;
}

static void do_status(struct dc_supd *sup, const char *name, dcctl_Response *r)
{
	char shown[DC_SHOWN_NAME];
	size_t n = 0;

	r->workers = calloc(sup->nworkers > 0 ? sup->nworkers : 1, sizeof(*r->workers));
	if (r->workers == NULL) {
		set_error(r, dcctl_Code_CODE_FAILED, "out of memory");
		return;
	}
	for (size_t i = 0; i < sup->nworkers; i++) {
		const struct dc_worker *w = sup->workers[i];

		if (w->removed || (name[0] != '\0' && strcmp(name, w->spec.name) != 0))
			continue;
		r->workers_count = (pb_size_t)(n + 1);
		if (fill_status(&r->workers[n++], w) < 0) {
			set_error(r, dcctl_Code_CODE_FAILED, "out of memory");
			return;
		}
	}
	if (name[0] != '\0' && n == 0)
		set_error(r, dcctl_Code_CODE_UNKNOWN_CONNECTOR, "no connector named %s",
			  dc_log_shown(name, shown, sizeof(shown)));
}

static void handle(struct dc_supd *sup, const dcctl_Request *req, dcctl_Response *r)
{
	const char *name = req->name != NULL ? req->name : "";
	struct dc_worker *w = NULL;
	char err[512], shown[DC_SHOWN_NAME];

	if (req->version != dcctl_Version_VERSION_CURRENT) {
		set_error(r, dcctl_Code_CODE_VERSION_MISMATCH,
			  "danube-connectd speaks control protocol version %d, this client "
			  "speaks %u",
			  dcctl_Version_VERSION_CURRENT, (unsigned)req->version);
		return;
	}
	switch (req->op) {
	case dcctl_Op_OP_STATUS:
		do_status(sup, name, r);
		return;
	case dcctl_Op_OP_METRICS: {
		size_t len;

		r->text = dc_metrics_render(sup, &len);
		if (r->text == NULL)
			set_error(r, dcctl_Code_CODE_FAILED, "out of memory");
		return;
	}
	case dcctl_Op_OP_RELOAD:
		if (dc_supd_reload(sup, err, sizeof(err)) < 0)
			set_error(r, dcctl_Code_CODE_FAILED, "%s", err);
		return;
	case dcctl_Op_OP_START:
	case dcctl_Op_OP_STOP:
	case dcctl_Op_OP_RESTART:
		break;
	default:
		set_error(r, dcctl_Code_CODE_BAD_REQUEST, "unknown operation %d", (int)req->op);
		return;
	}
	if (name[0] == '\0') {
		set_error(r, dcctl_Code_CODE_BAD_REQUEST, "a connector name is required");
		return;
	}
	w = dc_supd_find(sup, name);
	if (w == NULL || w->removed) {
		set_error(r, dcctl_Code_CODE_UNKNOWN_CONNECTOR, "no connector named %s",
			  dc_log_shown(name, shown, sizeof(shown)));
		return;
	}
	if (req->op != dcctl_Op_OP_STOP && !w->spec.valid) {
		set_error(r, dcctl_Code_CODE_FAILED,
			  "connector %s has configuration errors (see the log or --check)", name);
		return;
	}
	if (sup->shutting_down) {
		set_error(r, dcctl_Code_CODE_FAILED, "danube-connectd is shutting down");
		return;
	}
	dc_log_info("%s: %s requested over the control socket", name,
		    req->op == dcctl_Op_OP_START  ? "start"
		    : req->op == dcctl_Op_OP_STOP ? "stop"
						  : "restart");
	w->held = req->op == dcctl_Op_OP_STOP;
	dc_worker_event(w, req->op == dcctl_Op_OP_START  ? DC_EV_START
			   : req->op == dcctl_Op_OP_STOP ? DC_EV_STOP
							 : DC_EV_RESTART);
}

static int reply(struct dc_control *c, const dcctl_Response *r)
{
	size_t size = 0;
	nng_msg *msg;
	pb_ostream_t os;
	int rv;

	if (!pb_get_encoded_size(&size, dcctl_Response_fields, r))
		return NNG_EINVAL;
	rv = nng_msg_alloc(&msg, size);
	if (rv != 0)
		return rv;
	os = pb_ostream_from_buffer(nng_msg_body(msg), size);
	if (!pb_encode(&os, dcctl_Response_fields, r)) {
		nng_msg_free(msg);
		return NNG_EINVAL;
	}
	rv = nng_sendmsg(c->sock, msg, NNG_FLAG_NONBLOCK);
	if (rv != 0)
		nng_msg_free(msg);
	return rv;
}

static void serve_one(struct dc_control *c, nng_msg *msg)
{
	dcctl_Request req = dcctl_Request_init_zero;
	dcctl_Response r = dcctl_Response_init_zero;
	pb_istream_t is = pb_istream_from_buffer(nng_msg_body(msg), nng_msg_len(msg));
	int rv;

	r.version = dcctl_Version_VERSION_CURRENT;
	if (!pb_decode(&is, dcctl_Request_fields, &req))
		set_error(&r, dcctl_Code_CODE_BAD_REQUEST, "undecodable request: %s",
			  PB_GET_ERROR(&is));
	else
		handle(c->sup, &req, &r);
	rv = reply(c, &r);
	if (rv != 0)
		dc_log_warn("control socket: cannot reply: %s", nng_strerror(rv));
	pb_release(dcctl_Request_fields, &req);
	pb_release(dcctl_Response_fields, &r);
	nng_msg_free(msg);
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
	struct dc_control *c = (struct dc_control *)((char *)io - offsetof(struct dc_control, io));
	nng_msg *msg;

	/* A bounded batch: a flood of requests cannot starve the workers. */
	for (int i = 0; i < 64; i++) {
		int rv = nng_recvmsg(c->sock, &msg, NNG_FLAG_NONBLOCK);

		if (rv == NNG_EAGAIN)
			return;
		if (rv != 0) {
			dc_log_warn("control socket: receive: %s", nng_strerror(rv));
			return;
		}
		serve_one(c, msg);
	}
}

/* A socket file nobody answers on is left over from a crash; a live one is another daemon. */
static int clear_stale_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rv = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		rv = -EADDRINUSE;
	else if (errno == ECONNREFUSED && unlink(path) < 0)
		rv = -errno;
	close(fd);
	return rv;
}

int dc_control_open(struct dc_control **out, struct dc_supd *sup)
{
	struct dc_control *c = calloc(1, sizeof(*c));
	nng_listener l;
	char *url = NULL, shown[DC_SHOWN_PATH];
	int fd, rv;

	if (c == NULL)
		return -ENOMEM;
	c->sup = sup;
	if (asprintf(&c->path, "%s/control.sock", sup->conf.run_dir) < 0) {
		free(c);
		return -ENOMEM;
	}
	rv = clear_stale_socket(c->path);
	if (rv < 0) {
		dc_log_error("control socket %s: %s", dc_log_shown(c->path, shown, sizeof(shown)),
			     rv == -EADDRINUSE ? "another danube-connectd is running"
					       : strerror(-rv));
		goto fail_path;
	}
	if (asprintf(&url, "ipc://%s", c->path) < 0) {
		rv = -ENOMEM;
		goto fail_path;
	}
	rv = nng_rep0_open(&c->sock);
	if (rv != 0)
		goto fail_nng;
	if ((rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_PRE, on_pipe, NULL)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, on_pipe, NULL)) != 0 ||
	    (rv = nng_listener_create(&l, c->sock, url)) != 0 ||
	    (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0600)) != 0 ||
	    (rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, MAX_REQUEST_BYTES)) != 0 ||
	    (rv = nng_listener_start(l, 0)) != 0 ||
	    (rv = nng_socket_get_int(c->sock, NNG_OPT_RECVFD, &fd)) != 0) {
		nng_close(c->sock);
		goto fail_nng;
	}
	ev_io_init(&c->io, on_readable, fd, EV_READ);
	ev_io_start(sup->loop, &c->io);
	free(url);
	*out = c;
	return 0;

fail_nng:
	dc_log_error("control socket %s: %s", dc_log_shown(url, shown, sizeof(shown)),
		     nng_strerror(rv));
	rv = -EIO;
	free(url);
fail_path:
	free(c->path);
	free(c);
	return rv;
}

void dc_control_close(struct dc_control *c)
{
	if (c == NULL)
		return;
	ev_io_stop(c->sup->loop, &c->io);
	nng_close(c->sock);
	(void)unlink(c->path);
	free(c->path);
	free(c);
}

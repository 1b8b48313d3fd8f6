/*
 * The worker's IPC server: nng REP on the libev loop through NNG_OPT_RECVFD,
 * so requests are decoded and answered on the loop thread, never on nng's.
 */
#include "ipc/ipc.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pb_decode.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* A health request is a few bytes; anything big is not ours. */
#define MAX_REQUEST_BYTES 4096

struct dc_ipc {
	struct ev_loop *loop;
	nng_socket sock;
	bool up; /* sock open and listening, watcher started */
	ev_io watcher;
	ev_timer rearm;
	double rearm_s;
	ev_tstamp last_request;
	atomic_int pipes; /* peers attached, kept by nng's threads */
	char *url;
	unsigned long answered;
	unsigned long rearms;
	dc_ipc_health_fn fill;
};

static const char *ipc_path(const char *url)
{
	return strncmp(url, "ipc://", 6) == 0 ? url + 6 : NULL;
}

/* An nng error as -errno, the project's one error space. */
static int nng_errno(int rv)
{
	static const int map[][2] = {
		{NNG_EINTR, EINTR},           {NNG_ENOMEM, ENOMEM},
		{NNG_EINVAL, EINVAL},         {NNG_EBUSY, EBUSY},
		{NNG_ETIMEDOUT, ETIMEDOUT},   {NNG_ECONNREFUSED, ECONNREFUSED},
		{NNG_ECLOSED, EBADF},         {NNG_EAGAIN, EAGAIN},
		{NNG_ENOTSUP, ENOTSUP},       {NNG_EADDRINUSE, EADDRINUSE},
		{NNG_ESTATE, EINVAL},         {NNG_ENOENT, ENOENT},
		{NNG_EPROTO, EPROTO},         {NNG_EUNREACHABLE, EHOSTUNREACH},
		{NNG_EADDRINVAL, EINVAL},     {NNG_EPERM, EPERM},
		{NNG_EMSGSIZE, EMSGSIZE},     {NNG_ECONNABORTED, ECONNABORTED},
		{NNG_ECONNRESET, ECONNRESET}, {NNG_ECANCELED, ECANCELED},
		{NNG_ENOFILES, EMFILE},       {NNG_ENOSPC, ENOSPC},
		{NNG_EEXIST, EEXIST},
	};

	if (rv & NNG_ESYSERR)
		return -(rv & ~NNG_ESYSERR);
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i][0] == rv)
			return -map[i][1];
	return -EIO;
}

static int encode_reply(nng_msg **out, const dcctl_Response *resp)
{
	size_t size;
	nng_msg *msg;
	pb_ostream_t os;
	int rv;

	if (!pb_get_encoded_size(&size, dcctl_Response_fields, resp))
		return -EINVAL;
	rv = nng_msg_alloc(&msg, size);
	if (rv != 0)
		return nng_errno(rv);
	os = pb_ostream_from_buffer(nng_msg_body(msg), size);
	if (!pb_encode(&os, dcctl_Response_fields, resp)) {
		nng_msg_free(msg);
		return -EINVAL;
	}
	*out = msg;
	return 0;
}

static void answer(const struct dc_ipc *ipc, dcctl_Response *resp, const void *body, size_t len)
{
	dcctl_Request req = dcctl_Request_init_default;
	pb_istream_t is = pb_istream_from_buffer(body, len);

	resp->version = dcctl_Version_VERSION_CURRENT;
	if (!pb_decode(&is, dcctl_Request_fields, &req)) {
		resp->code = dcctl_Code_CODE_BAD_REQUEST;
		resp->error = strdup("undecodable request");
	} else if (req.version != dcctl_Version_VERSION_CURRENT) {
		resp->code = dcctl_Code_CODE_VERSION_MISMATCH;
		if (asprintf(&resp->error,
			     "worker speaks control protocol version %d, this client speaks %u",
			     dcctl_Version_VERSION_CURRENT, (unsigned)req.version) < 0)
			resp->error = NULL;
	} else if (req.op != dcctl_Op_OP_HEALTH) {
		resp->code = dcctl_Code_CODE_BAD_REQUEST;
		resp->error = strdup("a worker answers health requests only");
	} else if (ipc->fill(&resp->health) < 0) {
		pb_release(dcctl_Health_fields, &resp->health);
		memset(&resp->health, 0, sizeof(resp->health));
		resp->code = dcctl_Code_CODE_FAILED;
		resp->error = strdup("out of memory");
	} else {
		resp->has_health = true;
	}
	pb_release(dcctl_Request_fields, &req);
}

static void serve_one(struct dc_ipc *ipc, nng_msg *msg)
{
	dcctl_Response resp = dcctl_Response_init_default;
	nng_msg *reply = NULL;
	int rv;

	if (nng_msg_len(msg) > MAX_REQUEST_BYTES) {
		resp.version = dcctl_Version_VERSION_CURRENT;
		resp.code = dcctl_Code_CODE_BAD_REQUEST;
		resp.error = strdup("request too large");
	} else {
		answer(ipc, &resp, nng_msg_body(msg), nng_msg_len(msg));
	}
	nng_msg_free(msg);
	if (encode_reply(&reply, &resp) < 0) {
		dc_log_error("ipc: cannot encode the health reply");
		pb_release(dcctl_Response_fields, &resp);
		return;
	}
	pb_release(dcctl_Response_fields, &resp);
	/*
	 * The requester may be gone (a supervisor restarting, a client that hung
	 * up mid-request): REP then drops the reply, and the REQ side resends.
	 */
	rv = nng_sendmsg(ipc->sock, reply, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		nng_msg_free(reply);
		dc_log_debug("ipc: reply not sent: %s", nng_strerror(rv));
		return;
	}
	ipc->answered++;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dc_ipc *ipc = w->data;

	ipc->last_request = ev_now(loop);
	for (;;) {
		nng_msg *msg;
		int rv = nng_recvmsg(ipc->sock, &msg, NNG_FLAG_NONBLOCK);

		if (rv == NNG_EAGAIN)
			return;
		if (rv != 0) {
			/* Closed under us or a transient failure: the fd tells us when to retry. */
			dc_log_debug("ipc: receive: %s", nng_strerror(rv));
			return;
		}
		serve_one(ipc, msg);
	}
}

static int listen_on(struct dc_ipc *ipc)
{
	const char *path = ipc_path(ipc->url);
	nng_listener l;
	int rv;

	/* A dead predecessor's socket file would make the bind fail with EADDRINUSE. */
	if (path && unlink(path) < 0 && errno != ENOENT) {
		rv = -errno;
		dc_log_error("ipc: cannot remove stale socket %s: %s", path, strerror(-rv));
		return rv;
	}
	rv = nng_listener_create(&l, ipc->sock, ipc->url);
	if (rv == 0 && path)
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0600);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv != 0) {
		dc_log_error("ipc: cannot listen on %s: %s", ipc->url, nng_strerror(rv));
		return nng_errno(rv);
	}
	return 0;
}

/* Runs on an nng thread: only the atomic counter is touched. */
static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct dc_ipc *ipc = arg;

	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&ipc->pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&ipc->pipes, 1);
}

static int sock_up(struct dc_ipc *ipc)
{
	int fd = -1;
	int rv = nng_rep0_open(&ipc->sock);

	if (rv != 0) {
		dc_log_error("ipc: cannot open a REP socket: %s", nng_strerror(rv));
		return nng_errno(rv);
	}
	atomic_store(&ipc->pipes, 0);
	rv = nng_socket_set_size(ipc->sock, NNG_OPT_RECVMAXSZ, MAX_REQUEST_BYTES);
	if (rv == 0)
		rv = nng_pipe_notify(ipc->sock, NNG_PIPE_EV_ADD_POST, on_pipe, ipc);
	if (rv == 0)
		rv = nng_pipe_notify(ipc->sock, NNG_PIPE_EV_REM_POST, on_pipe, ipc);
	if (rv == 0)
		rv = nng_socket_get_int(ipc->sock, NNG_OPT_RECVFD, &fd);
	if (rv != 0) {
		dc_log_error("ipc: cannot set up the REP socket: %s", nng_strerror(rv));
		nng_close(ipc->sock);
		return nng_errno(rv);
	}
	rv = listen_on(ipc);
	if (rv < 0) {
		nng_close(ipc->sock);
		return rv;
	}
	ev_io_init(&ipc->watcher, on_readable, fd, EV_READ);
	ipc->watcher.data = ipc;
	ev_io_start(ipc->loop, &ipc->watcher);
	ipc->up = true;
	ipc->last_request = ev_now(ipc->loop);
	return 0;
}

static void sock_down(struct dc_ipc *ipc)
{
	if (!ipc->up)
		return;
	/* Stop watching before the fd goes away with the socket. */
	ev_io_stop(ipc->loop, &ipc->watcher);
	/* Never blocked in a receive (all are non-blocking): no close deadlock. */
	nng_close(ipc->sock);
	ipc->up = false;
}

/*
 * nng 1.5.2 (issue 1518): a peer that hangs up during the handshake wedges
 * the listener for good, and the supervisor would take the silence for a hung
 * worker. With no peer attached and nothing received for a while, listen
 * afresh; an attached supervisor keeps its pipe and sees no churn.
 */
static void on_rearm(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_ipc *ipc = w->data;

	if (ipc->up &&
	    (atomic_load(&ipc->pipes) > 0 || ev_now(loop) - ipc->last_request < ipc->rearm_s))
		return;
	sock_down(ipc);
	if (sock_up(ipc) == 0) {
		ipc->rearms++;
		dc_log_debug("ipc: listening afresh on %s", ipc->url);
	}
}

int dc_ipc_open(struct dc_ipc **out, struct ev_loop *loop, const char *url, dc_ipc_health_fn fill)
{
	struct dc_ipc *ipc;
	int rv;

	*out = NULL;
	if (!url) {
		url = getenv(DC_IPC_ENV);
		if (!url || !*url)
			return 0;
	}
	ipc = calloc(1, sizeof(*ipc));
	if (!ipc || !(ipc->url = strdup(url))) {
		dc_log_error("ipc: out of memory");
		free(ipc);
		return -ENOMEM;
	}
	ipc->fill = fill;
	ipc->loop = loop;
	rv = sock_up(ipc);
	if (rv < 0) {
		free(ipc->url);
		free(ipc);
		return rv;
	}
	ev_init(&ipc->rearm, on_rearm);
	ipc->rearm.data = ipc;
	dc_ipc_set_rearm_ms(ipc, DC_IPC_REARM_MS);
	*out = ipc;
	return 0;
}

void dc_ipc_set_rearm_ms(struct dc_ipc *ipc, unsigned ms)
{
	if (ev_is_active(&ipc->rearm)) {
		ev_ref(ipc->loop); /* libev: undo ev_unref before stopping */
		ev_timer_stop(ipc->loop, &ipc->rearm);
	}
	ipc->rearm_s = ms / 1000.0;
	if (ms) {
		ev_timer_set(&ipc->rearm, ipc->rearm_s, ipc->rearm_s);
		ev_timer_start(ipc->loop, &ipc->rearm);
		/* A timer keeps the loop alive; the worker's own watchers should decide. */
		ev_unref(ipc->loop);
	}
}

unsigned long dc_ipc_rearms(const struct dc_ipc *ipc)
{
	return ipc->rearms;
}

const char *dc_ipc_url(const struct dc_ipc *ipc)
{
	return ipc->url;
}

unsigned long dc_ipc_answered(const struct dc_ipc *ipc)
{
	return ipc->answered;
}

void dc_ipc_close(struct dc_ipc *ipc)
{
	if (ipc) {
		const char *path = ipc_path(ipc->url);

		dc_ipc_set_rearm_ms(ipc, 0);
		sock_down(ipc);
		if (path)
			unlink(path);
		free(ipc->url);
		free(ipc);
	}
}

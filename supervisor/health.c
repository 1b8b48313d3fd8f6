/*
 * Health requests over nng REQ with aio callbacks. One socket per worker,
 * closed and re-made on each of the worker's lives, so a worker that dies in
 * the middle of a handshake (nng 1.5.2 bugs) costs only its own socket. The
 * nng thread never touches libev beyond ev_async_send.
 */
#include "health.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum phase { PH_IDLE, PH_SEND, PH_RECV };

struct dc_health_chan {
	nng_socket sock;
	nng_aio *aio;
	struct ev_loop *loop;
	ev_async *wake;
	enum phase phase; /* the aio's: written before an op starts, read in its callback */
	bool busy;        /* loop thread only: a request is outstanding */

	pthread_mutex_t mtx; /* guards the hand-over below */
	bool done;
	int rv;
	nng_msg *msg;
};

static void finish(struct dc_health_chan *c, int rv, nng_msg *msg)
{
	pthread_mutex_lock(&c->mtx);
	c->done = true;
	c->rv = rv;
	c->msg = msg;
	pthread_mutex_unlock(&c->mtx);
	ev_async_send(c->loop, c->wake);
}

/* Runs on an nng thread. */
static void on_aio(void *arg)
{
	struct dc_health_chan *c = arg;
	int rv = nng_aio_result(c->aio);
	nng_msg *msg;

	if (c->phase == PH_SEND) {
		if (rv != 0) {
			msg = nng_aio_get_msg(c->aio);
			if (msg != NULL)
				nng_msg_free(msg);
			nng_aio_set_msg(c->aio, NULL);
			c->phase = PH_IDLE;
			finish(c, rv, NULL);
			return;
		}
		/* The socket owns the message now. */
		nng_aio_set_msg(c->aio, NULL);
		c->phase = PH_RECV;
		nng_recv_aio(c->sock, c->aio);
		return;
	}
	msg = rv == 0 ? nng_aio_get_msg(c->aio) : NULL;
	nng_aio_set_msg(c->aio, NULL);
	c->phase = PH_IDLE;
	finish(c, rv, msg);
}

int dc_health_chan_open(struct dc_health_chan **out, const char *url, struct ev_loop *loop,
			ev_async *wake, int timeout_ms)
{
	struct dc_health_chan *c = calloc(1, sizeof(*c));
	int rv;

	if (c == NULL)
		return -NNG_ENOMEM;
	c->loop = loop;
	c->wake = wake;
	pthread_mutex_init(&c->mtx, NULL);
	rv = nng_req0_open(&c->sock);
	if (rv != 0)
		goto fail_mtx;
	/* A worker binds its socket within milliseconds of exec: find it quickly. */
	(void)nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 10);
	(void)nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 200);
	rv = nng_aio_alloc(&c->aio, on_aio, c);
	if (rv != 0)
		goto fail_sock;
	nng_aio_set_timeout(c->aio, timeout_ms);
	rv = nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv != 0)
		goto fail_aio;
	*out = c;
	return 0;

fail_aio:
	nng_aio_free(c->aio);
fail_sock:
	nng_close(c->sock);
fail_mtx:
	pthread_mutex_destroy(&c->mtx);
	free(c);
	return -rv;
}

int dc_health_chan_ask(struct dc_health_chan *c)
{
	dcctl_Request req = {.version = dcctl_Version_VERSION_CURRENT, .op = dcctl_Op_OP_HEALTH};
	size_t size = 0;
	nng_msg *msg;
	pb_ostream_t os;
	int rv;

	if (c->busy)
		return 1;
	if (!pb_get_encoded_size(&size, dcctl_Request_fields, &req))
		return -NNG_EINVAL;
	rv = nng_msg_alloc(&msg, size);
	if (rv != 0)
		return -rv;
	os = pb_ostream_from_buffer(nng_msg_body(msg), size);
	if (!pb_encode(&os, dcctl_Request_fields, &req)) {
		nng_msg_free(msg);
		return -NNG_EINVAL;
	}
	c->busy = true;
	c->phase = PH_SEND;
	nng_aio_set_msg(c->aio, msg);
	nng_send_aio(c->sock, c->aio);
	return 0;
}

int dc_health_chan_take(struct dc_health_chan *c, dcctl_Response *resp, char *err, size_t errlen)
{
	nng_msg *msg;
	pb_istream_t is;
	bool done;
	int rv;

	pthread_mutex_lock(&c->mtx);
	done = c->done;
	rv = c->rv;
	msg = c->msg;
	c->done = false;
	c->msg = NULL;
	pthread_mutex_unlock(&c->mtx);
	if (!done)
		return 0;
	c->busy = false;
	if (rv != 0) {
		snprintf(err, errlen, "%s", nng_strerror(rv));
		return -1;
	}
	memset(resp, 0, sizeof(*resp));
	is = pb_istream_from_buffer(nng_msg_body(msg), nng_msg_len(msg));
	if (!pb_decode(&is, dcctl_Response_fields, resp)) {
		snprintf(err, errlen, "undecodable health answer: %s", PB_GET_ERROR(&is));
		pb_release(dcctl_Response_fields, resp);
		nng_msg_free(msg);
		return -1;
	}
	nng_msg_free(msg);
	if (resp->version != dcctl_Version_VERSION_CURRENT || resp->code != dcctl_Code_CODE_OK ||
	    !resp->has_health) {
		snprintf(err, errlen, "health request refused (version %u, code %d): %s",
			 (unsigned)resp->version, (int)resp->code,
			 resp->error != NULL ? resp->error : "no health in answer");
		pb_release(dcctl_Response_fields, resp);
		return -1;
	}
	return 1;
}

void dc_health_chan_close(struct dc_health_chan *c)
{
	if (c == NULL)
		return;
	/* Never close with an operation in flight: nng 1.5.2 can deadlock there. */
	nng_aio_stop(c->aio);
	nng_close(c->sock);
	nng_aio_free(c->aio);
	if (c->msg != NULL)
		nng_msg_free(c->msg);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

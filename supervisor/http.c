/*
 * /metrics, /healthz and /readyz on nng's HTTP server. Handlers run on nng
 * threads and read only the snapshot below, under its mutex.
 */
#include "http.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct dc_http {
	nng_http_server *srv;
	pthread_mutex_t mtx;
	char *metrics;
	size_t metrics_len;
	char *not_ready;
	bool published;
};

enum page { PAGE_METRICS, PAGE_HEALTHZ, PAGE_READYZ };

struct route {
	const char *path;
	enum page page;
	struct dc_http *h;
};

static void respond(nng_aio *aio, uint16_t status, const char *ctype, const char *body, size_t len)
{
	nng_http_res *res;
	int rv;

	rv = nng_http_res_alloc(&res);
	if (rv != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	if ((rv = nng_http_res_set_status(res, status)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Content-Type", ctype)) != 0 ||
	    (rv = nng_http_res_copy_data(res, body, len)) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

/* Runs on an nng thread: touches only the snapshot. */
static void on_request(nng_aio *aio)
{
	nng_http_handler *hd = nng_aio_get_input(aio, 1);
	struct route *r = nng_http_handler_get_data(hd);
	struct dc_http *h = r->h;
	char *body = NULL;
	size_t len = 0;
	uint16_t status = 200;
	const char *ctype = "text/plain; charset=utf-8";

	pthread_mutex_lock(&h->mtx);
	switch (r->page) {
	case PAGE_METRICS:
		ctype = "text/plain; version=0.0.4; charset=utf-8";
		body = malloc(h->metrics_len + 1);
		if (body != NULL) {
			memcpy(body, h->metrics != NULL ? h->metrics : "", h->metrics_len);
			len = h->metrics_len;
		}
		break;
	case PAGE_HEALTHZ:
		body = strdup("ok\n");
		len = 3;
		break;
	case PAGE_READYZ:
		if (!h->published || h->not_ready != NULL) {
			status = 503;
			if (asprintf(&body, "not ready: %s\n",
				     h->published ? h->not_ready : "starting up") < 0)
				body = NULL;
		} else {
			body = strdup("ready\n");
		}
		len = body != NULL ? strlen(body) : 0;
		break;
	}
	pthread_mutex_unlock(&h->mtx);
	if (body == NULL) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	respond(aio, status, ctype, body, len);
	free(body);
}

static int add_route(struct dc_http *h, const char *path, enum page page)
{
	nng_http_handler *hd;
	struct route *r = malloc(sizeof(*r));
	int rv;

	if (r == NULL)
		return NNG_ENOMEM;
	r->path = path;
	r->page = page;
	r->h = h;
	rv = nng_http_handler_alloc(&hd, path, on_request);
	if (rv != 0) {
		free(r);
		return rv;
	}
	if ((rv = nng_http_handler_set_method(hd, "GET")) != 0 ||
	    (rv = nng_http_handler_set_data(hd, r, free)) != 0) {
		free(r);
		nng_http_handler_free(hd);
		return rv;
	}
	rv = nng_http_server_add_handler(h->srv, hd);
	if (rv != 0)
		nng_http_handler_free(hd); /* frees r through its destructor */
	return rv;
}

int dc_http_open(struct dc_http **out, const char *listen)
{
	struct dc_http *h = calloc(1, sizeof(*h));
	nng_url *url = NULL;
	char *s = NULL;
	int rv;

	if (h == NULL)
		return -NNG_ENOMEM;
	pthread_mutex_init(&h->mtx, NULL);
	if (asprintf(&s, "http://%s", listen) < 0) {
		s = NULL;
		rv = NNG_ENOMEM;
		goto fail;
	}
	if ((rv = nng_url_parse(&url, s)) != 0)
		goto fail;
	if ((rv = nng_http_server_hold(&h->srv, url)) != 0)
		goto fail;
	if ((rv = add_route(h, "/metrics", PAGE_METRICS)) != 0 ||
	    (rv = add_route(h, "/healthz", PAGE_HEALTHZ)) != 0 ||
	    (rv = add_route(h, "/readyz", PAGE_READYZ)) != 0 ||
	    (rv = nng_http_server_start(h->srv)) != 0) {
		nng_http_server_release(h->srv);
		goto fail;
	}
	nng_url_free(url);
	free(s);
	*out = h;
	return 0;

fail:
	dc_log_error("metrics_listen %s: %s", listen, nng_strerror(rv));
	if (url != NULL)
		nng_url_free(url);
	free(s);
	pthread_mutex_destroy(&h->mtx);
	free(h);
	return -rv;
}

void dc_http_close(struct dc_http *h)
{
	if (h == NULL)
		return;
	nng_http_server_stop(h->srv);
	nng_http_server_release(h->srv);
	free(h->metrics);
	free(h->not_ready);
	pthread_mutex_destroy(&h->mtx);
	free(h);
}

void dc_http_publish(struct dc_http *h, char *metrics, size_t len, char *not_ready)
{
	char *old_m, *old_n;

	pthread_mutex_lock(&h->mtx);
	old_m = h->metrics;
	old_n = h->not_ready;
	h->metrics = metrics;
	h->metrics_len = metrics != NULL ? len : 0;
	h->not_ready = not_ready;
	h->published = true;
	pthread_mutex_unlock(&h->mtx);
	free(old_m);
	free(old_n);
}

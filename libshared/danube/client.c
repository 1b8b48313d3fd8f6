/*
 * The Danube client object: shared gRPC connections, nanopb unary calls,
 * topic lookup and TopicPartitions on the service URL.
 */
#include "danube/internal.h"
#include "h2/grpc.h"

#include "danube/DanubeApi.pb.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

struct dn_rpc {
	struct dn_client *c;
	struct dc_grpc_call *call;
	const pb_msgdesc_t *resp_fields;
	size_t resp_size;
	void *resp;      /* decoded answer, NULL until one arrived */
	bool bad_answer; /* an answer that did not decode */
	dn_rpc_fn cb;
	void *arg;
};

char *dn_strdup(const char *s, bool *ok)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*ok = false;
	return d;
}

int dn_client_new(struct ev_loop *loop, const struct dn_client_opts *opts, struct dn_client **out)
{
	struct dn_client *c;
	bool ok = true;

	*out = NULL;
	if (loop == NULL || opts == NULL || opts->service_url == NULL ||
	    opts->service_url[0] == '\0')
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->loop = loop;
	c->service_url = dn_strdup(opts->service_url, &ok);
	if (opts->token != NULL && opts->token[0] != '\0')
		c->token = dn_strdup(opts->token, &ok);
	if (opts->tls_ca != NULL && opts->tls_ca[0] != '\0')
		c->tls_ca = dn_strdup(opts->tls_ca, &ok);
	c->max_msg_size = opts->max_msg_size ? opts->max_msg_size : 4u * 1024 * 1024;
	if (!ok) {
		dn_client_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void dn_client_free(struct dn_client *c)
{
	if (c == NULL)
		return;
	while (c->ops != NULL)
		dn_op_cancel(c->ops);
	dn_state_free(c);
	free(c->service_url);
	free(c->token);
	free(c->tls_ca);
	free(c->scratch);
	free(c);
}

void dn_shutdown(void)
{
	dc_grpc_shutdown_all();
}

int dn_client_conn(struct dn_client *c, const char *url, struct dc_grpc_conn **out)
{
	struct dc_grpc_opts o = {0};
	char buf[512];
	size_t n = strlen(url);
	int r;

	/* A token is only ever sent over TLS, as the Rust client does. */
	if (c->token != NULL && strncmp(url, "http://", 7) == 0)
		r = snprintf(buf, sizeof(buf), "https://%s", url + 7);
	else
		r = snprintf(buf, sizeof(buf), "%s", url);
	if (r < 0 || (size_t)r >= sizeof(buf))
		return -ENAMETOOLONG;
	/* Brokers may hand out "http://host:port/" (Uri display). */
	n = (size_t)r;
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	o.url = buf;
	o.token = c->token;
	o.tls_ca = c->tls_ca;
	o.max_msg_size = c->max_msg_size;
	r = dc_grpc_conn_get(c->loop, &o, out);
	if (r == 0)
		r = dn_state_track(c, *out);
	return r;
}

static int scratch_grow(struct dn_client *c, size_t need)
{
	size_t cap = need < 4096 ? 4096 : need + need / 4;
	uint8_t *nb;

	if (need <= c->scratch_cap)
		return 0;
	nb = realloc(c->scratch, cap);
	if (nb == NULL)
		return -ENOMEM;
	c->scratch = nb;
	c->scratch_cap = cap;
	return 0;
}

int dn_encode(struct dn_client *c, const pb_msgdesc_t *fields, const void *msg, uint8_t **buf,
	      size_t *len)
{
	pb_ostream_t os;
	size_t need;

	/* Encode once into the scratch buffer; size first only when it did not fit. */
	if (scratch_grow(c, 4096) != 0)
		return -ENOMEM;
	os = pb_ostream_from_buffer(c->scratch, c->scratch_cap);
	if (!pb_encode(&os, fields, msg)) {
		if (!pb_get_encoded_size(&need, fields, msg))
			return -EINVAL;
		if (need <= c->scratch_cap)
			return -EINVAL; /* it fitted, so encoding itself failed */
		if (scratch_grow(c, need) != 0)
			return -ENOMEM;
		os = pb_ostream_from_buffer(c->scratch, c->scratch_cap);
		if (!pb_encode(&os, fields, msg))
			return -EINVAL;
	}
	*buf = c->scratch;
	*len = os.bytes_written;
	return 0;
}

bool dn_pb_encode_bytes(pb_ostream_t *stream, const pb_field_iter_t *field, void *const *arg)
{
	const struct dn_bytes *b = *arg;

	return pb_encode_tag_for_field(stream, field) && pb_encode_string(stream, b->data, b->len);
}

bool dn_pb_decode_bytes(pb_istream_t *stream, const pb_field_iter_t *field, void **arg)
{
	struct dn_bytes *b = *arg;
	size_t len = stream->bytes_left;
	uint8_t *data = malloc(len ? len : 1);

	if (data == NULL)
		return false;
	if (!pb_read(stream, data, len)) {
		free(data);
		return false;
	}
	/* A repeated occurrence replaces the earlier one, as protobuf merges scalars. */
	free(b->data);
	b->data = data;
	b->len = len;
	return true;
}

static void rpc_free(struct dn_rpc *r)
{
	if (r->resp != NULL) {
		pb_release(r->resp_fields, r->resp);
		free(r->resp);
	}
	free(r);
}

static void rpc_on_msg(void *arg, const uint8_t *buf, size_t len)
{
	struct dn_rpc *r = arg;
	pb_istream_t is;

	/* A unary call has one answer; ignore anything after it. */
	if (r->resp_fields == NULL || r->resp != NULL || r->bad_answer)
		return;
	r->resp = calloc(1, r->resp_size);
	if (r->resp == NULL) {
		r->bad_answer = true;
		return;
	}
	is = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&is, r->resp_fields, r->resp)) {
		pb_release(r->resp_fields, r->resp);
		free(r->resp);
		r->resp = NULL;
		r->bad_answer = true;
	}
}

static void rpc_on_done(void *arg, int code, const char *message)
{
	struct dn_rpc *r = arg;

	r->call = NULL;
	if (code == DN_OK && r->resp_fields != NULL && r->resp == NULL) {
		code = DN_INTERNAL;
		message = r->bad_answer ? "the broker's answer could not be decoded"
					: "the broker sent no answer";
	}
	r->cb(r->arg, code, message != NULL ? message : "", code == DN_OK ? r->resp : NULL);
	rpc_free(r);
}

char *dn_proxy_value(const char *connect_url, const char *broker_url, bool *ok)
{
	const char *auth;
	size_t len;
	char *v;

	if (strcmp(connect_url, broker_url) == 0)
		return NULL;
	/*
	 * The Rust client sends Uri::to_string(), and http::Uri prints an
	 * absolute URI without a path as "scheme://authority/": match it, so a
	 * proxy routing on the header sees what Rust clients send. A URL that
	 * has a path already is sent as the broker gave it.
	 */
	auth = strstr(broker_url, "://");
	len = strlen(broker_url);
	v = malloc(len + 2);
	if (v == NULL) {
		*ok = false;
		return NULL;
	}
	memcpy(v, broker_url, len + 1);
	if (auth != NULL && auth[3] != '\0' && strchr(auth + 3, '/') == NULL)
		memcpy(v + len, "/", 2);
	return v;
}

const char *const *dn_proxy_headers(const char *kv[3], const char *proxy)
{
	if (proxy == NULL)
		return NULL;
	kv[0] = "x-danube-broker-url";
	kv[1] = proxy;
	kv[2] = NULL;
	return kv;
}

int dn_rpc_start(struct dn_client *c, struct dc_grpc_conn *conn, const char *path,
		 const char *proxy, const pb_msgdesc_t *req_fields, const void *req,
		 const pb_msgdesc_t *resp_fields, size_t resp_size, uint32_t deadline_ms,
		 dn_rpc_fn cb, void *arg, struct dn_rpc **out)
{
	const char *kv[3];
	struct dn_rpc *r;
	uint8_t *buf;
	size_t len;
	int err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->c = c;
	r->resp_fields = resp_fields;
	r->resp_size = resp_size;
	r->cb = cb;
	r->arg = arg;
	dn_state_touch(c, conn);
	err = dn_encode(c, req_fields, req, &buf, &len);
	if (err == 0)
		err = dc_grpc_call_start_hdr(conn, path, dn_proxy_headers(kv, proxy), buf, len,
					     deadline_ms, rpc_on_msg, rpc_on_done, r, &r->call);
	if (err != 0) {
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

void dn_rpc_cancel(struct dn_rpc *r)
{
	if (r == NULL)
		return;
	if (r->call != NULL)
		dc_grpc_call_cancel(r->call);
	rpc_free(r);
}

/* --------------------------------------------------------------- operations */

static void op_link(struct dn_op *op)
{
	struct dn_client *c = op->c;

	op->tracked = true;
	op->next = c->ops;
	op->prev = NULL;
	if (c->ops != NULL)
		c->ops->prev = op;
	c->ops = op;
}

void dn_op_detach(struct dn_op *op)
{
	if (!op->tracked)
		return;
	if (op->prev != NULL)
		op->prev->next = op->next;
	else
		op->c->ops = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	op->tracked = false;
}

void dn_op_free(struct dn_op *op)
{
	dn_op_detach(op);
	free(op->name);
	free(op);
}

void dn_op_cancel(struct dn_op *op)
{
	if (op == NULL)
		return;
	dn_rpc_cancel(op->rpc);
	dn_op_free(op);
}

struct dn_op *dn_op_new(struct dn_client *c, const char *name, struct dn_op **out)
{
	struct dn_op *op = calloc(1, sizeof(*op));
	bool ok = true;

	if (op == NULL)
		return NULL;
	op->c = c;
	op->name = dn_strdup(name, &ok);
	if (!ok) {
		free(op);
		return NULL;
	}
	/* Without a handle for the caller, the client owns it (cancelled at free). */
	if (out != NULL)
		*out = op;
	else
		op_link(op);
	return op;
}

static void lookup_done(void *arg, int code, const char *message, void *resp)
{
	struct dn_op *op = arg;
	danube_TopicLookupResponse *lr = resp;
	char err[DN_ERRLEN];

	op->rpc = NULL;
	dn_op_detach(op);
	if (code != DN_OK) {
		dn_error_format(err, sizeof(err), code, message, "topic %s: lookup failed",
				op->name);
		op->cb.lookup(op->arg, code, err, NULL);
	} else if (lr->connect_url == NULL && lr->broker_url == NULL) {
		dn_error_format(err, sizeof(err), DN_NOT_FOUND, "the broker named no owner",
				"topic %s: lookup failed", op->name);
		op->cb.lookup(op->arg, DN_NOT_FOUND, err, NULL);
	} else {
		struct dn_lookup_result res = {
			.connect_url = lr->connect_url ? lr->connect_url : lr->broker_url,
			.broker_url = lr->broker_url ? lr->broker_url : lr->connect_url,
			.proxy = lr->proxy,
		};
		op->cb.lookup(op->arg, DN_OK, "", &res);
	}
	dn_op_free(op);
}

/* Errors that stop an operation before it reaches the broker. */
static int start_failed(struct dn_op *op, struct dn_op **out, int err)
{
	if (out != NULL)
		*out = NULL;
	dn_op_free(op);
	return err;
}

/*
 * TopicLookup and TopicPartitions take the same request, sent to the
 * service URL (never a proxy header): op is new, its callback already set.
 */
static int topic_op(struct dn_client *c, struct dn_op *op, const char *path,
		    const pb_msgdesc_t *resp_fields, size_t resp_size, dn_rpc_fn done,
		    struct dn_op **out)
{
	danube_TopicLookupRequest req = danube_TopicLookupRequest_init_zero;
	struct dc_grpc_conn *conn;
	int err;

	err = dn_client_conn(c, c->service_url, &conn);
	if (err != 0)
		return start_failed(op, out, err);
	req.request_id = ++c->request_id;
	req.topic = op->name;
	err = dn_rpc_start(c, conn, path, NULL, danube_TopicLookupRequest_fields, &req, resp_fields,
			   resp_size, DN_CONTROL_DEADLINE_MS, done, op, &op->rpc);
	if (err != 0)
		return start_failed(op, out, err);
	return 0;
}

int dn_lookup_op(struct dn_client *c, const char *topic, dn_lookup_fn cb, void *arg,
		 struct dn_op **out)
{
	struct dn_op *op;

	if (topic == NULL || cb == NULL)
		return -EINVAL;
	op = dn_op_new(c, topic, out);
	if (op == NULL)
		return -ENOMEM;
	op->cb.lookup = cb;
	op->arg = arg;
	return topic_op(c, op, DN_PATH_LOOKUP, danube_TopicLookupResponse_fields,
			sizeof(danube_TopicLookupResponse), lookup_done, out);
}

int dn_lookup(struct dn_client *c, const char *topic, dn_lookup_fn cb, void *arg)
{
	return dn_lookup_op(c, topic, cb, arg, NULL);
}

static void partitions_done(void *arg, int code, const char *message, void *resp)
{
	struct dn_op *op = arg;
	danube_TopicPartitionsResponse *pr = resp;
	char err[DN_ERRLEN];

	op->rpc = NULL;
	dn_op_detach(op);
	if (code != DN_OK) {
		dn_error_format(err, sizeof(err), code, message,
				"topic %s: listing its partitions failed", op->name);
		op->cb.partitions(op->arg, code, err, NULL, 0);
	} else {
		op->cb.partitions(op->arg, DN_OK, "", pr->partitions, pr->partitions_count);
	}
	dn_op_free(op);
}

int dn_partitions_op(struct dn_client *c, const char *topic, dn_partitions_fn cb, void *arg,
		     struct dn_op **out)
{
	struct dn_op *op;

	if (topic == NULL || cb == NULL)
		return -EINVAL;
	op = dn_op_new(c, topic, out);
	if (op == NULL)
		return -ENOMEM;
	op->cb.partitions = cb;
	op->arg = arg;
	return topic_op(c, op, DN_PATH_PARTITIONS, danube_TopicPartitionsResponse_fields,
			sizeof(danube_TopicPartitionsResponse), partitions_done, out);
}

int dn_topic_partitions(struct dn_client *c, const char *topic, dn_partitions_fn cb, void *arg)
{
	return dn_partitions_op(c, topic, cb, arg, NULL);
}

int dn_health_start(struct dn_client *c, struct dc_grpc_conn *conn, const char *proxy,
		    bool consumer, uint64_t id, dn_rpc_fn cb, void *arg, struct dn_rpc **out)
{
	danube_HealthCheckRequest req = danube_HealthCheckRequest_init_zero;

	req.request_id = ++c->request_id;
	req.client = consumer ? danube_HealthCheckRequest_ClientType_Consumer
			      : danube_HealthCheckRequest_ClientType_Producer;
	req.id = id;
	return dn_rpc_start(c, conn, DN_PATH_HEALTH, proxy, danube_HealthCheckRequest_fields, &req,
			    danube_HealthCheckResponse_fields, sizeof(danube_HealthCheckResponse),
			    DN_CONTROL_DEADLINE_MS, cb, arg, out);
}

bool dn_health_is_close(const void *resp)
{
	const danube_HealthCheckResponse *hr = resp;

	return hr->status == danube_HealthCheckResponse_ClientStatus_CLOSE;
}

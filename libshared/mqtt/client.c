/*
 * libmosquitto on a libev loop: the socket is watched by ev_io (reads, and
 * writes while mosquitto_want_write), a 1 s timer runs mosquitto_loop_misc
 * (keepalive, retries) and a reconnect timer applies the backoff.
 */
#include <errno.h>
#include <ev.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "mqtt/client.h"

/* Packets handled per readable event: bounded so one busy socket cannot starve the loop. */
#define DC_MQTT_READ_BURST 100

struct dc_mqtt {
	struct ev_loop *loop;
	struct mosquitto *mosq;
	struct dc_mqtt_opts o;
	struct dc_mqtt_cbs cb;
	void *arg;
	ev_io rd_w, wr_w;
	ev_timer misc_w, retry_w;
	struct dc_backoff backoff;
	int fd;
	bool started, connected, connecting, paused, freeing;
	char last_error[128]; /* libmosquitto's words for the last failed request */
};

/* Clients alive: libmosquitto is initialised with the first, cleaned up with the last. */
static unsigned lib_users;

static void sync_watchers(struct dc_mqtt *m);
static void schedule_retry(struct dc_mqtt *m, const char *reason);

int dc_mqtt_errno(int mosq_rc, int sys_errno)
{
	switch (mosq_rc) {
	case MOSQ_ERR_SUCCESS:
		return 0;
	case MOSQ_ERR_NOMEM:
		return -ENOMEM;
	case MOSQ_ERR_INVAL:
	case MOSQ_ERR_MALFORMED_UTF8:
	case MOSQ_ERR_TOPIC_ALIAS_INVALID:
		return -EINVAL;
	case MOSQ_ERR_NO_CONN:
		return -ENOTCONN;
	case MOSQ_ERR_CONN_REFUSED:
		return -ECONNREFUSED;
	case MOSQ_ERR_NOT_FOUND:
		return -ENOENT;
	case MOSQ_ERR_CONN_LOST:
		return -ECONNRESET;
	case MOSQ_ERR_PAYLOAD_SIZE:
	case MOSQ_ERR_OVERSIZE_PACKET:
		return -EMSGSIZE;
	case MOSQ_ERR_NOT_SUPPORTED:
	case MOSQ_ERR_QOS_NOT_SUPPORTED:
	case MOSQ_ERR_RETAIN_NOT_SUPPORTED:
		return -ENOTSUP;
	case MOSQ_ERR_AUTH:
	case MOSQ_ERR_ACL_DENIED:
		return -EACCES;
	case MOSQ_ERR_ERRNO:
		return sys_errno > 0 ? -sys_errno : -EIO;
	case MOSQ_ERR_EAI:
	case MOSQ_ERR_LOOKUP:
		return -EHOSTUNREACH;
	case MOSQ_ERR_KEEPALIVE:
	case MOSQ_ERR_TIMEOUT:
		return -ETIMEDOUT;
	case MOSQ_ERR_PROTOCOL:
	case MOSQ_ERR_PROXY:
	case MOSQ_ERR_MALFORMED_PACKET:
	case MOSQ_ERR_DUPLICATE_PROPERTY:
		return -EPROTO;
	case MOSQ_ERR_ALREADY_EXISTS:
		return -EEXIST;
	default: /* TLS, OCSP, UNKNOWN and codes newer than this table */
		return -EIO;
	}
}

/* libmosquitto's words for rc; call before anything can change errno. */
static const char *mosq_words(int rc)
{
	return rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
}

/* What libmosquitto said, as 0 or -errno; the words are kept for dc_mqtt_last_error. */
static int mosq_result(struct dc_mqtt *m, int rc)
{
	int sys_errno = errno;

	if (rc == MOSQ_ERR_SUCCESS)
		return 0;
	snprintf(m->last_error, sizeof(m->last_error), "%s", mosq_words(rc));
	return dc_mqtt_errno(rc, sys_errno);
}

const char *dc_mqtt_last_error(const struct dc_mqtt *m)
{
	return m->last_error;
}

const char *dc_mqtt_lib_version(void)
{
	static char buf[32];
	int a, b, c;

	mosquitto_lib_version(&a, &b, &c);
	snprintf(buf, sizeof(buf), "%d.%d.%d", a, b, c);
	return buf;
}

static void on_connect_cb(struct mosquitto *mosq, void *arg, int rc)
{
	struct dc_mqtt *m = arg;

	(void)mosq;
	m->connecting = false;
	if (rc != 0) {
		/* Refused: libmosquitto closes the socket; we come back after a delay. */
		schedule_retry(m, mosquitto_connack_string(rc));
		return;
	}
	m->connected = true;
	dc_backoff_reset(&m->backoff);
	dc_log_info("mqtt: connected to %s:%d as %s", m->o.host, m->o.port, m->o.client_id);
	if (m->cb.on_connect)
		m->cb.on_connect(m->arg);
}

static void on_disconnect_cb(struct mosquitto *mosq, void *arg, int rc)
{
	struct dc_mqtt *m = arg;

	(void)mosq;
	if (m->freeing)
		return;
	schedule_retry(m, rc == 0 ? "disconnected" : mosquitto_strerror(rc));
}

static void on_message_cb(struct mosquitto *mosq, void *arg, const struct mosquitto_message *msg)
{
	struct dc_mqtt *m = arg;

	(void)mosq;
	if (m->cb.on_message)
		m->cb.on_message(m->arg, msg);
}

static void on_subscribe_cb(struct mosquitto *mosq, void *arg, int mid, int qos_count,
			    const int *granted)
{
	struct dc_mqtt *m = arg;

	(void)mosq;
	/* 0x80 in granted: the broker refused that filter. */
	for (int i = 0; i < qos_count; i++)
		if (granted[i] > 2)
			dc_log_error("mqtt: %s:%d refused subscription %d", m->o.host, m->o.port,
				     mid);
		else
			dc_log_info("mqtt: subscription %d granted qos %d", mid, granted[i]);
}

static void on_publish_cb(struct mosquitto *mosq, void *arg, int mid)
{
	struct dc_mqtt *m = arg;

	(void)mosq;
	if (m->cb.on_publish)
		m->cb.on_publish(m->arg, mid);
}

static void stop_io(struct dc_mqtt *m)
{
	ev_io_stop(m->loop, &m->rd_w);
	ev_io_stop(m->loop, &m->wr_w);
	m->fd = -1;
}

/* The connection is gone (or never came): tell the user once and retry later. */
static void schedule_retry(struct dc_mqtt *m, const char *reason)
{
	bool was_up = m->connected;
	uint64_t delay;

	m->connected = false;
	m->connecting = false;
	stop_io(m);
	if (ev_is_active(&m->retry_w))
		return;
	delay = dc_backoff_next(&m->backoff);
	if (was_up)
		dc_log_warn("mqtt: connection to %s:%d lost (%s); reconnecting in %llu ms",
			    m->o.host, m->o.port, reason, (unsigned long long)delay);
	else
		dc_log_warn("mqtt: cannot connect to %s:%d (%s); retrying in %llu ms", m->o.host,
			    m->o.port, reason, (unsigned long long)delay);
	ev_timer_set(&m->retry_w, (double)delay / 1000.0, 0.0);
	ev_timer_start(m->loop, &m->retry_w);
	if (m->cb.on_disconnect)
		m->cb.on_disconnect(m->arg, reason);
}

static void handle_rc(struct dc_mqtt *m, int rc)
{
	if (rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN) {
		sync_watchers(m);
		return;
	}
	/* libmosquitto usually called on_disconnect already; retry is idempotent. */
	schedule_retry(m, mosq_words(rc));
}

static void sync_watchers(struct dc_mqtt *m)
{
	int fd = mosquitto_socket(m->mosq);

	if (fd != m->fd) {
		stop_io(m);
		if (fd < 0)
			return;
		m->fd = fd;
		ev_io_set(&m->rd_w, fd, EV_READ);
		ev_io_set(&m->wr_w, fd, EV_WRITE);
	}
	if (m->paused)
		ev_io_stop(m->loop, &m->rd_w);
	else
		ev_io_start(m->loop, &m->rd_w);
	if (mosquitto_want_write(m->mosq))
		ev_io_start(m->loop, &m->wr_w);
	else
		ev_io_stop(m->loop, &m->wr_w);
}

static void rd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dc_mqtt *m = w->data;

	(void)loop;
	(void)revents;
	handle_rc(m, mosquitto_loop_read(m->mosq, DC_MQTT_READ_BURST));
}

static void wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dc_mqtt *m = w->data;

	(void)loop;
	(void)revents;
	handle_rc(m, mosquitto_loop_write(m->mosq, DC_MQTT_READ_BURST));
}

static void misc_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_mqtt *m = w->data;
	int rc;

	(void)loop;
	(void)revents;
	if (m->fd < 0)
		return;
	rc = mosquitto_loop_misc(m->mosq);
	/* TLS may hold decrypted bytes the socket no longer signals: read them here. */
	if (rc == MOSQ_ERR_SUCCESS && !m->paused && m->fd >= 0 && m->o.tls_ca)
		rc = mosquitto_loop_read(m->mosq, DC_MQTT_READ_BURST);
	handle_rc(m, rc);
}

static void connect_now(struct dc_mqtt *m)
{
	int rc;

	m->connecting = true;
	if (!m->started)
		rc = mosquitto_connect_async(m->mosq, m->o.host, m->o.port, m->o.keepalive_s);
	else
		rc = mosquitto_reconnect_async(m->mosq);
	m->started = true;
	if (rc != MOSQ_ERR_SUCCESS) {
		schedule_retry(m, mosq_words(rc));
		return;
	}
	sync_watchers(m);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_mqtt *m = w->data;

	(void)loop;
	(void)revents;
	connect_now(m);
}

static int set_options(struct dc_mqtt *m, char *err, size_t errlen)
{
	const struct dc_mqtt_opts *o = &m->o;
	int rc;

	rc = mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, o->protocol);
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(err, errlen, "protocol: %s", mosquitto_strerror(rc));
		return dc_mqtt_errno(rc, 0);
	}
	if (o->username || o->password) {
		rc = mosquitto_username_pw_set(m->mosq, o->username, o->password);
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(err, errlen, "username/password: %s", mosquitto_strerror(rc));
			return dc_mqtt_errno(rc, 0);
		}
	}
	if (o->tls_ca || o->tls_cert || o->tls_key) {
		if (!o->tls_ca) {
			snprintf(err, errlen, "tls_cert and tls_key need tls_ca");
			return -EINVAL;
		}
		if (!o->tls_cert != !o->tls_key) {
			snprintf(err, errlen, "tls_cert and tls_key go together");
			return -EINVAL;
		}
		rc = mosquitto_tls_set(m->mosq, o->tls_ca, NULL, o->tls_cert, o->tls_key, NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			int sys_errno = errno;

			snprintf(err, errlen, "TLS: %s", mosq_words(rc));
			return dc_mqtt_errno(rc, sys_errno);
		}
	}
	return 0;
}

int dc_mqtt_new(struct ev_loop *loop, const struct dc_mqtt_opts *opts,
		const struct dc_mqtt_cbs *cbs, void *arg, struct dc_mqtt **out, char *err,
		size_t errlen)
{
	struct dc_mqtt *m;
	int rc;

	if (lib_users == 0 && mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
		snprintf(err, errlen, "libmosquitto initialisation failed");
		return -EIO;
	}
	lib_users++;
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	m->loop = loop;
	m->o = *opts;
	m->cb = *cbs;
	m->arg = arg;
	m->fd = -1;
	m->mosq = mosquitto_new(opts->client_id, opts->clean_session, m);
	if (!m->mosq) {
		rc = errno > 0 ? -errno : -ENOMEM;
		snprintf(err, errlen, "cannot create the MQTT client: %s", strerror(-rc));
		goto fail;
	}
	rc = set_options(m, err, errlen);
	if (rc != 0) {
		mosquitto_destroy(m->mosq);
		goto fail;
	}
	mosquitto_connect_callback_set(m->mosq, on_connect_cb);
	mosquitto_disconnect_callback_set(m->mosq, on_disconnect_cb);
	mosquitto_message_callback_set(m->mosq, on_message_cb);
	mosquitto_publish_callback_set(m->mosq, on_publish_cb);
	mosquitto_subscribe_callback_set(m->mosq, on_subscribe_cb);
	dc_backoff_init(&m->backoff, opts->backoff_initial_ms, opts->backoff_max_ms,
			dc_now_us() | 1u);
	ev_io_init(&m->rd_w, rd_cb, -1, EV_READ);
	ev_io_init(&m->wr_w, wr_cb, -1, EV_WRITE);
	ev_timer_init(&m->misc_w, misc_cb, 1.0, 1.0);
	ev_timer_init(&m->retry_w, retry_cb, 0.0, 0.0);
	m->rd_w.data = m->wr_w.data = m->misc_w.data = m->retry_w.data = m;
	*out = m;
	return 0;
fail:
	free(m);
	if (--lib_users == 0)
		mosquitto_lib_cleanup();
	return rc;
}

void dc_mqtt_start(struct dc_mqtt *m)
{
	ev_timer_start(m->loop, &m->misc_w);
	connect_now(m);
}

void dc_mqtt_pause(struct dc_mqtt *m)
{
	m->paused = true;
	ev_io_stop(m->loop, &m->rd_w);
}

void dc_mqtt_resume(struct dc_mqtt *m)
{
	m->paused = false;
	if (m->fd >= 0)
		sync_watchers(m);
}

bool dc_mqtt_connected(const struct dc_mqtt *m)
{
	return m->connected;
}

int dc_mqtt_subscribe(struct dc_mqtt *m, const char *filter, int qos)
{
	int rc = mosq_result(m, mosquitto_subscribe(m->mosq, NULL, filter, qos));

	if (rc != 0)
		return rc;
	sync_watchers(m);
	return 0;
}

int dc_mqtt_publish(struct dc_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		    bool retain, int *mid)
{
	int rc;

	if (len > INT32_MAX)
		return mosq_result(m, MOSQ_ERR_PAYLOAD_SIZE);
	rc = mosq_result(m, mosquitto_publish(m->mosq, mid, topic, (int)len, payload, qos, retain));
	if (rc != 0)
		return rc;
	sync_watchers(m);
	return 0;
}

void dc_mqtt_free(struct dc_mqtt *m)
{
	if (!m)
		return;
	m->freeing = true;
	if (m->connected)
		mosquitto_disconnect(m->mosq);
	stop_io(m);
	ev_timer_stop(m->loop, &m->misc_w);
	ev_timer_stop(m->loop, &m->retry_w);
	mosquitto_destroy(m->mosq);
	free(m);
	if (--lib_users == 0)
		mosquitto_lib_cleanup();
}

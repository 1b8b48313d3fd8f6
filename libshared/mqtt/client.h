/*
 * An MQTT client (libmosquitto) driven by a libev loop: no extra thread,
 * asynchronous connect, reconnect with backoff; shared by source-mqtt and
 * sink-mqtt.
 */
#ifndef DC_MQTT_CLIENT_H
#define DC_MQTT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct mosquitto_message;
struct dc_mqtt;

struct dc_mqtt_opts {
	const char *host;
	int port;
	const char *client_id;
	const char *username; /* NULL: none */
	const char *password; /* NULL: none */
	const char *tls_ca;   /* any of the three set: TLS */
	const char *tls_cert;
	const char *tls_key;
	int keepalive_s;
	bool clean_session;
	int protocol; /* 4 (3.1.1) or 5 */
	uint64_t backoff_initial_ms, backoff_max_ms;
};

struct dc_mqtt_cbs {
	/* Connected (every time): subscribe here. */
	void (*on_connect)(void *arg);
	/* The connection is lost or was refused; the client retries by itself. */
	void (*on_disconnect)(void *arg, const char *reason);
	/* The message belongs to libmosquitto: copy what must outlive the call. */
	void (*on_message)(void *arg, const struct mosquitto_message *msg);
	/* QoS 0 sent, QoS 1 PUBACK, QoS 2 PUBCOMP. */
	void (*on_publish)(void *arg, int mid);
};

/*
 * Checks the options and creates the client; no I/O yet. Returns 0, or with
 * why in err: -EINVAL (bad options, TLS files), -ENOMEM, -EIO (libmosquitto
 * cannot initialise).
 */
int dc_mqtt_new(struct ev_loop *loop, const struct dc_mqtt_opts *opts,
		const struct dc_mqtt_cbs *cbs, void *arg, struct dc_mqtt **out, char *err,
		size_t errlen);
/* Starts connecting (asynchronously). */
void dc_mqtt_start(struct dc_mqtt *m);
/* Stop / start reading the socket (backpressure); keepalive and writes go on. */
void dc_mqtt_pause(struct dc_mqtt *m);
void dc_mqtt_resume(struct dc_mqtt *m);
bool dc_mqtt_connected(const struct dc_mqtt *m);
/*
 * Return 0 or -errno (dc_mqtt_errno): -ENOTCONN while not connected (QoS > 0
 * publishes are still queued), -ENOMEM, -EINVAL, -EMSGSIZE, ...;
 * dc_mqtt_last_error says what libmosquitto said.
 */
int dc_mqtt_subscribe(struct dc_mqtt *m, const char *filter, int qos);
int dc_mqtt_publish(struct dc_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		    bool retain, int *mid);
/* libmosquitto's words for the last failed subscribe or publish, for logs. */
const char *dc_mqtt_last_error(const struct dc_mqtt *m);
/*
 * A libmosquitto result (MOSQ_ERR_*) as 0 or -errno; sys_errno is errno
 * as it was after the call, used for MOSQ_ERR_ERRNO.
 */
int dc_mqtt_errno(int mosq_rc, int sys_errno);
/* Disconnects, stops every watcher and frees. */
void dc_mqtt_free(struct dc_mqtt *m);

/* A version string of libmosquitto, for logs. */
const char *dc_mqtt_lib_version(void);

#endif

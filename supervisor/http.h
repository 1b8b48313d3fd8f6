/*
 * The HTTP endpoint: /metrics, /healthz, /readyz on the daemon's loop. It
 * serves a snapshot the loop publishes, one request per connection.
 */
#ifndef DC_HTTP_H
#define DC_HTTP_H

#include <ev.h>
#include <stddef.h>

/* Limits an operator may meet (danube-connectd(8), HTTP). */
#define DC_HTTP_MAX_CONNECTIONS 32    /* open at once; more wait in the listen backlog */
#define DC_HTTP_MAX_REQUEST     8192  /* request line and headers: 431 beyond */
#define DC_HTTP_MAX_LINE        2048  /* request line: 414 beyond */
#define DC_HTTP_REQUEST_MS      5000  /* from connect to the end of the headers: 408 */
#define DC_HTTP_SEND_MS         10000 /* to send the answer */

struct dc_http;

/*
 * The syntax of metrics_listen: HOST:PORT, [IPV6]:PORT, or :PORT for every
 * address; PORT from 1 to 65535. Returns 0 with host (empty for every
 * address) and port filled, or -1 with what is wrong in err.
 */
int dc_http_listen_parse(const char *listen, char *host, size_t hostsz, char *port, size_t portsz,
			 char *err, size_t errsz);

/*
 * What the start would find wrong with metrics_listen short of the port
 * being taken: its syntax, a host that does not resolve, an address that is
 * not this machine's. 0, or -1 with why in err.
 */
int dc_http_listen_check(const char *listen, char *err, size_t errsz);

/* listen: "host:port". Returns 0, or a negative errno (message logged). */
int dc_http_open(struct dc_http **out, struct ev_loop *loop, const char *listen);
/* Closes the listener and every connection. */
void dc_http_close(struct dc_http *h);

/*
 * Replace the snapshot; takes ownership of metrics (malloc'd, len bytes)
 * and not_ready (malloc'd names of enabled connectors not running, space
 * separated; NULL when all are).
 */
void dc_http_publish(struct dc_http *h, char *metrics, size_t len, char *not_ready);

#endif

/*
 * The HTTP endpoint (nng's HTTP server): /metrics, /healthz, /readyz. Its
 * handlers run on nng threads, so they serve a snapshot the loop publishes.
 */
#ifndef DC_HTTP_H
#define DC_HTTP_H

#include <stddef.h>

struct dc_http;

/* listen: "host:port". Returns 0, or a negative nng error (message logged). */
int dc_http_open(struct dc_http **out, const char *listen);
void dc_http_close(struct dc_http *h);

/*
 * Replace the snapshot; takes ownership of metrics (malloc'd, len bytes)
 * and not_ready (malloc'd names of enabled connectors not running, space
 * separated; NULL when all are).
 */
void dc_http_publish(struct dc_http *h, char *metrics, size_t len, char *not_ready);

#endif

/*
 * The supervisor's health channel to one worker: a REQ socket dialed to the
 * worker's IPC socket, asked with nng aio; answers are handed to the loop
 * thread through an ev_async and picked up with dc_health_chan_take().
 */
#ifndef DC_HEALTH_H
#define DC_HEALTH_H

#include <ev.h>
#include <stddef.h>

#include "control.pb.h"

struct dc_health_chan;

/*
 * Dial url in the background (the worker may not listen yet). wake is sent
 * from an nng thread whenever an answer or a failure is ready. timeout_ms
 * bounds each request. Returns 0 or a negative nng error.
 */
int dc_health_chan_open(struct dc_health_chan **out, const char *url, struct ev_loop *loop,
			ev_async *wake, int timeout_ms);

/* Send OP_HEALTH unless a request is still outstanding (then returns 1). */
int dc_health_chan_ask(struct dc_health_chan *c);

/*
 * 1: an answer arrived, *resp decoded (pb_release it); -1: the request failed
 * (reason in err); 0: nothing new.
 */
int dc_health_chan_take(struct dc_health_chan *c, dcctl_Response *resp, char *err, size_t errlen);

/* Stop the outstanding request (waiting for its callback) and close the socket. */
void dc_health_chan_close(struct dc_health_chan *c);

#endif

/* A worker's stdout or stderr pipe, read on the loop and cut into lines. */
#ifndef DC_OUTPUT_H
#define DC_OUTPUT_H

#include <ev.h>
#include <stddef.h>
#include <sys/types.h>

/* Longer lines are cut into pieces of this size. */
#define DC_OUTPUT_LINE_MAX 4096

/* One line, without its newline; tag and pid as given to dc_outstream_open. */
typedef void (*dc_line_fn)(void *arg, int tag, pid_t pid, const char *line, size_t len);

struct dc_outstream;

/* Takes ownership of fd (non-blocking). Returns 0 or -errno. */
int dc_outstream_open(struct dc_outstream **out, struct ev_loop *loop, int fd, int tag, pid_t pid,
		      dc_line_fn fn, void *arg);

/*
 * Read what is there without blocking, hand out a last partial line, close
 * the fd and free. Safe on NULL.
 */
void dc_outstream_close(struct dc_outstream *s);

#endif

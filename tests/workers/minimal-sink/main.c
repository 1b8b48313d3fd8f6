/*
 * minimal-sink: the smallest useful sink on the connector runtime, and the
 * measure of what a new connector costs. It appends each message's payload
 * as a line to [minimal] out_file and syncs the file before the runtime
 * acknowledges the batch; a failed write is retried with backoff.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "runtime/connector.h"

/* clang-format off */
static const struct dc_cfg_key minimal_keys[] = {
	{.section = "minimal", .key = "out_file", .type = DC_CFG_STRING, .flags = DC_CFG_REQUIRED},
};
/* clang-format on */
static const struct dc_cfg_table minimal_table = DC_CFG_TABLE(minimal_keys);

struct minimal {
	struct dc_rt *rt;
	const char *path;
	FILE *out;
};

static void minimal_write(void *state, struct dc_batch *b)
{
	struct minimal *m = state;
	bool ok = true;
	int err;

	for (size_t i = 0; i < b->n && ok; i++) {
		const struct dn_message *msg = b->records[i].msg;

		ok = fwrite(msg->payload, 1, msg->payload_len, m->out) == msg->payload_len &&
		     fputc('\n', m->out) != EOF;
	}
	ok = ok && fflush(m->out) == 0 && fsync(fileno(m->out)) == 0;
	err = errno;
	for (size_t i = 0; i < b->n && !ok; i++)
		dc_rt_set_result(&b->records[i], DC_WRITE_RETRY, "external", "writing %s: %s",
				 m->path, strerror(err));
	dc_rt_write_done(m->rt, b);
}

static int minimal_open(struct dc_rt *rt, const struct dc_config *cfg, void *state,
			struct dc_diag *diag)
{
	struct minimal *m = state;

	m->rt = rt;
	m->path = dc_config_str(cfg, "minimal", "out_file");
	if (m->path[0] != '/') {
		dc_diag_add(diag, "%s: out_file must be an absolute path",
			    dc_config_where(cfg, "minimal", "out_file"));
		return -1;
	}
	return 0;
}

static int minimal_start(void *state)
{
	struct minimal *m = state;

	m->out = fopen(m->path, "a");
	if (!m->out) {
		dc_log_error("minimal: cannot open %s: %m", m->path);
		return -1;
	}
	dc_rt_external_up(m->rt);
	return 0;
}

static void minimal_close(void *state)
{
	struct minimal *m = state;

	if (m->out)
		fclose(m->out);
}

DC_SINK_WORKER("minimal-sink", minimal, &minimal_table)

/*
 * danube-connectctl's client of the supervisor's control socket: one blocking
 * nng REQ round trip per command, and the commands that need no formatting.
 */
#include <getopt.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"

/* --wait without SECONDS. */
#define WAIT_DEFAULT_S 60
/* How often --wait asks for the state. */
#define WAIT_POLL_MS 100

/* Start, stop and restart wait for the daemon, which may wait for a worker. */
#define CALL_TIMEOUT_MS 30000

static int encode_request(nng_msg **out, const dcctl_Request *req)
{
	size_t size;
	pb_ostream_t os;

	if (!pb_get_encoded_size(&size, dcctl_Request_fields, req) || nng_msg_alloc(out, size) != 0)
		return -1;
	os = pb_ostream_from_buffer(nng_msg_body(*out), size);
	if (!pb_encode(&os, dcctl_Request_fields, req)) {
		nng_msg_free(*out);
		return -1;
	}
	return 0;
}

static int unreachable(const char *url, int rv)
{
	const char *why = nng_strerror(rv);

	/* nng calls a missing socket file "Entry not found": say what it means here. */
	if (rv == NNG_ENOENT)
		why = "no such socket";
	fprintf(stderr,
		"danube-connectctl: cannot reach danube-connectd at %s: %s (is it running?)\n", url,
		why);
	return DC_EXIT_UNAVAILABLE;
}

int ctl_call(const char *url, dcctl_Op op, const char *name, dcctl_Response *resp)
{
	dcctl_Request req = {.version = dcctl_Version_VERSION_CURRENT, .op = op};
	nng_socket s;
	nng_msg *msg = NULL;
	pb_istream_t is;
	int rv;

	memset(resp, 0, sizeof(*resp));
	req.name = (char *)name;
	rv = nng_req0_open(&s);
	if (rv != 0) {
		fprintf(stderr, "danube-connectctl: nng: %s\n", nng_strerror(rv));
		return DC_EXIT_FAILURE;
	}
	/* A resend could run a restart twice: one request, one answer or a timeout. */
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, CALL_TIMEOUT_MS);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, CALL_TIMEOUT_MS);
	rv = nng_dial(s, url, NULL, 0);
	if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP) {
		fprintf(stderr, "danube-connectctl: bad socket URL '%s': %s\n", url,
			nng_strerror(rv));
		nng_close(s);
		return DC_EXIT_USAGE;
	}
	if (rv != 0) {
		nng_close(s);
		return unreachable(url, rv);
	}
	if (encode_request(&msg, &req) < 0) {
		fprintf(stderr, "danube-connectctl: cannot encode the request\n");
		nng_close(s);
		return DC_EXIT_FAILURE;
	}
	rv = nng_sendmsg(s, msg, 0);
	if (rv != 0) {
		nng_msg_free(msg);
		nng_close(s);
		return unreachable(url, rv);
	}
	rv = nng_recvmsg(s, &msg, 0);
	nng_close(s);
	if (rv == NNG_ETIMEDOUT) {
		fprintf(stderr,
			"danube-connectctl: danube-connectd at %s did not answer within %d s\n",
			url, CALL_TIMEOUT_MS / 1000);
		return DC_EXIT_UNAVAILABLE;
	}
	if (rv != 0)
		return unreachable(url, rv);
	is = pb_istream_from_buffer(nng_msg_body(msg), nng_msg_len(msg));
	if (!pb_decode(&is, dcctl_Response_fields, resp)) {
		nng_msg_free(msg);
		pb_release(dcctl_Response_fields, resp);
		fprintf(stderr, "danube-connectctl: undecodable answer from danube-connectd\n");
		return DC_EXIT_FAILURE;
	}
	nng_msg_free(msg);
	return ctl_check(resp, name);
}

int ctl_check(const dcctl_Response *resp, const char *name)
{
	const char *err = resp->error && *resp->error ? resp->error : NULL;

	switch (resp->code) {
	case dcctl_Code_CODE_OK:
		return 0;
	case dcctl_Code_CODE_VERSION_MISMATCH:
		if (err)
			fprintf(stderr, "danube-connectctl: version mismatch: %s\n", err);
		else
			fprintf(stderr,
				"danube-connectctl: version mismatch: danube-connectd speaks "
				"control "
				"protocol version %u, this client speaks %d\n",
				(unsigned)resp->version, dcctl_Version_VERSION_CURRENT);
		return DC_EXIT_FAILURE;
	case dcctl_Code_CODE_UNKNOWN_CONNECTOR:
		if (err)
			fprintf(stderr, "danube-connectctl: %s\n", err);
		else
			fprintf(stderr, "danube-connectctl: no connector named %s\n",
				name ? name : "(none)");
		return DC_EXIT_FAILURE;
	default:
		fprintf(stderr, "danube-connectctl: %s\n", err ? err : "request failed");
		return DC_EXIT_FAILURE;
	}
}

/* [-s URL] alone: reload and metrics. */
static int parse_simple(int argc, char **argv, const char **url)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+s:", longopts, NULL)) != -1) {
		if (opt != 's')
			return ctl_usage_error("%s: bad option", argv[0]);
		*url = optarg;
	}
	if (optind != argc)
		return ctl_usage_error("%s: unexpected argument '%s'", argv[0], argv[optind]);
	return 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A state the connector does not leave by itself towards want. */
static bool dead_end(const char *state, const char *want)
{
	if (strcmp(want, "running") == 0)
		return strcmp(state, "failed") == 0 || strcmp(state, "stopped") == 0;
	return false;
}

/* Polls the connector's state until it is want: 0, or 1 with the state it is in on stderr. */
static int wait_for(const char *url, const char *name, const char *want, unsigned seconds)
{
	uint64_t end = mono_ms() + (uint64_t)seconds * 1000u;
	const struct timespec pause = {.tv_nsec = WAIT_POLL_MS * 1000000L};

	for (;;) {
		dcctl_Response resp;
		char state[32] = "", last_error[256] = "";
		int rc = ctl_call(url, dcctl_Op_OP_STATUS, name, &resp);

		if (rc == 0 && resp.workers_count == 1) {
			snprintf(state, sizeof(state), "%s", resp.workers[0].state);
			snprintf(last_error, sizeof(last_error), "%s",
				 resp.workers[0].last_error ? resp.workers[0].last_error : "");
		}
		pb_release(dcctl_Response_fields, &resp);
		if (rc != 0)
			return rc;
		if (strcmp(state, want) == 0)
			return 0;
		if (dead_end(state, want) || mono_ms() >= end) {
			const char *st = state[0] ? state : "unknown";

			if (dead_end(state, want))
				fprintf(stderr, "danube-connectctl: %s is %s, not %s", name, st,
					want);
			else
				fprintf(stderr, "danube-connectctl: %s is %s after %u s, not %s",
					name, st, seconds, want);
			fprintf(stderr, "%s%s\n", last_error[0] ? ": " : "", last_error);
			return DC_EXIT_FAILURE;
		}
		nanosleep(&pause, NULL);
	}
}

/* SECONDS of --wait: a whole number from 1 to a day. */
static bool parse_seconds(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return false;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v < 1 || v > 86400)
		return false;
	*out = (unsigned)v;
	return true;
}

/* [-s URL] [--wait [SECONDS]] NAME, in any order: start, stop and restart. */
static int parse_change(int argc, char **argv, const char **url, const char **name,
			unsigned *wait_s)
{
	*name = NULL;
	*wait_s = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0) {
			if (i + 1 == argc)
				return ctl_usage_error("%s: %s needs a URL", argv[0], a);
			*url = argv[++i];
		} else if (strncmp(a, "--socket=", 9) == 0) {
			*url = a + 9;
		} else if (strcmp(a, "--wait") == 0) {
			*wait_s = WAIT_DEFAULT_S;
			if (i + 1 < argc && parse_seconds(argv[i + 1], wait_s))
				i++;
		} else if (strncmp(a, "--wait=", 7) == 0) {
			if (!parse_seconds(a + 7, wait_s))
				return ctl_usage_error("%s: --wait takes SECONDS, 1 to 86400: '%s'",
						       argv[0], a + 7);
		} else if (a[0] == '-' && a[1] != '\0') {
			return ctl_usage_error("%s: bad option '%s'", argv[0], a);
		} else if (*name != NULL) {
			return ctl_usage_error("%s: unexpected argument '%s'", argv[0], a);
		} else {
			*name = a;
		}
	}
	if (*name == NULL)
		return ctl_usage_error("%s needs a connector NAME", argv[0]);
	return 0;
}

/* start, stop, restart: the request, then with --wait the state it leads to. */
static int change(int argc, char **argv, const char *url, dcctl_Op op)
{
	dcctl_Response resp;
	const char *name;
	unsigned wait_s;
	int rc = parse_change(argc, argv, &url, &name, &wait_s);

	if (rc != 0)
		return rc;
	rc = ctl_call(url, op, name, &resp);
	pb_release(dcctl_Response_fields, &resp);
	if (rc != 0 || wait_s == 0)
		return rc;
	return wait_for(url, name, op == dcctl_Op_OP_STOP ? "stopped" : "running", wait_s);
}

static int simple(int argc, char **argv, const char *url, dcctl_Op op)
{
	dcctl_Response resp;
	int rc = parse_simple(argc, argv, &url);

	if (rc != 0)
		return rc;
	rc = ctl_call(url, op, NULL, &resp);
	if (rc == 0 && op == dcctl_Op_OP_METRICS && resp.text)
		fputs(resp.text, stdout);
	pb_release(dcctl_Response_fields, &resp);
	if (rc == 0 && fflush(stdout) != 0) {
		perror("danube-connectctl: stdout");
		rc = DC_EXIT_FAILURE;
	}
	return rc;
}

int ctl_start(int argc, char **argv, const char *socket_url)
{
	return change(argc, argv, socket_url, dcctl_Op_OP_START);
}

int ctl_stop(int argc, char **argv, const char *socket_url)
{
	return change(argc, argv, socket_url, dcctl_Op_OP_STOP);
}

int ctl_restart(int argc, char **argv, const char *socket_url)
{
	return change(argc, argv, socket_url, dcctl_Op_OP_RESTART);
}

int ctl_reload(int argc, char **argv, const char *socket_url)
{
	return simple(argc, argv, socket_url, dcctl_Op_OP_RELOAD);
}

int ctl_metrics(int argc, char **argv, const char *socket_url)
{
	return simple(argc, argv, socket_url, dcctl_Op_OP_METRICS);
}

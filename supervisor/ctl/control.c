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

#include "control.h"

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

/* [-s URL] NAME for start, stop and restart; [-s URL] alone for reload and metrics. */
static int parse_simple(int argc, char **argv, const char **url, const char **name, bool want_name)
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
	if (want_name && optind == argc)
		return ctl_usage_error("%s needs a connector NAME", argv[0]);
	if (optind + (want_name ? 1 : 0) != argc)
		return ctl_usage_error("%s: unexpected argument '%s'", argv[0],
				       argv[optind + (want_name ? 1 : 0)]);
	*name = want_name ? argv[optind] : NULL;
	return 0;
}

static int simple(int argc, char **argv, const char *url, dcctl_Op op, bool want_name)
{
	dcctl_Response resp;
	const char *name = NULL;
	int rc = parse_simple(argc, argv, &url, &name, want_name);

	if (rc != 0)
		return rc;
	rc = ctl_call(url, op, name, &resp);
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
	return simple(argc, argv, socket_url, dcctl_Op_OP_START, true);
}

int ctl_stop(int argc, char **argv, const char *socket_url)
{
	return simple(argc, argv, socket_url, dcctl_Op_OP_STOP, true);
}

int ctl_restart(int argc, char **argv, const char *socket_url)
{
	return simple(argc, argv, socket_url, dcctl_Op_OP_RESTART, true);
}

int ctl_reload(int argc, char **argv, const char *socket_url)
{
	return simple(argc, argv, socket_url, dcctl_Op_OP_RELOAD, false);
}

int ctl_metrics(int argc, char **argv, const char *socket_url)
{
	return simple(argc, argv, socket_url, dcctl_Op_OP_METRICS, false);
}

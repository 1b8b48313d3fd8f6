/* danube-connectctl status: the workers as an aligned table or a JSON array. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

enum { C_NAME, C_TYPE, C_STATE, C_PID, C_UPTIME, C_RESTARTS, C_IN, C_OUT, C_ERRORS, C_LAST, NCOLS };

static const char *const headers[NCOLS] = {"NAME",     "TYPE", "STATE", "PID",    "UPTIME",
					   "RESTARTS", "IN",   "OUT",   "ERRORS", "LAST-ERROR"};

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

/* 45s, 12m30s, 3h12m, 2d4h: two units are enough to read at a glance. */
static void human_uptime(char *buf, size_t len, uint64_t s)
{
	if (s < 60)
		snprintf(buf, len, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

/* One line per row whatever the daemon sends: control characters become spaces. */
static void print_clean(const char *s)
{
	for (; *s; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

static void print_table(const dcctl_Response *resp)
{
	char cells[NCOLS][32];
	size_t width[NCOLS];

	for (int c = 0; c < NCOLS; c++)
		width[c] = strlen(headers[c]);
	/* Two passes: measure, then print; the fixed cells are short numbers. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			for (int c = 0; c < NCOLS - 1; c++)
				printf("%-*s  ", (int)width[c], headers[c]);
			printf("%s\n", headers[C_LAST]);
		}
		for (pb_size_t i = 0; i < resp->workers_count; i++) {
			const dcctl_WorkerStatus *w = &resp->workers[i];
			const char *text[NCOLS] = {or_dash(w->name), or_dash(w->type),
						   or_dash(w->state)};

			snprintf(cells[C_PID], sizeof(cells[0]), "%" PRId64, w->pid);
			if (w->pid > 0)
				human_uptime(cells[C_UPTIME], sizeof(cells[0]), w->uptime_s);
			else
				snprintf(cells[C_PID], sizeof(cells[0]), "-");
			snprintf(cells[C_RESTARTS], sizeof(cells[0]), "%" PRIu64, w->restarts);
			snprintf(cells[C_IN], sizeof(cells[0]), "%" PRIu64, w->received);
			snprintf(cells[C_OUT], sizeof(cells[0]), "%" PRIu64, w->processed);
			snprintf(cells[C_ERRORS], sizeof(cells[0]), "%" PRIu64, w->failed);
			text[C_PID] = cells[C_PID];
			text[C_UPTIME] = w->pid > 0 ? cells[C_UPTIME] : "-";
			for (int c = C_RESTARTS; c <= C_ERRORS; c++)
				text[c] = cells[c];
			text[C_LAST] = or_dash(w->last_error);
			for (int c = 0; c < NCOLS - 1; c++) {
				size_t n = strlen(text[c]);

				if (pass == 0 && n > width[c])
					width[c] = n;
				if (pass == 1) {
					print_clean(text[c]);
					printf("%*s", (int)(width[c] - n + 2), "");
				}
			}
			if (pass == 1) {
				print_clean(text[C_LAST]);
				putchar('\n');
			}
		}
	}
}

/* A JSON string: escapes per RFC 8259; invalid UTF-8 becomes U+FFFD. */
static void json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	putchar('"');
	while (*p) {
		unsigned char ch = *p;
		size_t n = ch < 0x80             ? 1
			   : (ch & 0xe0) == 0xc0 ? 2
			   : (ch & 0xf0) == 0xe0 ? 3
			   : (ch & 0xf8) == 0xf0 ? 4
						 : 0;
		size_t i;

		if (ch == '"' || ch == '\\') {
			printf("\\%c", ch);
		} else if (ch == '\n') {
			fputs("\\n", stdout);
		} else if (ch == '\t') {
			fputs("\\t", stdout);
		} else if (ch == '\r') {
			fputs("\\r", stdout);
		} else if (ch < 0x20 || ch == 0x7f) {
			printf("\\u%04x", ch);
		} else if (n == 1) {
			putchar(ch);
		} else {
			for (i = 1; n > 1 && i < n; i++) {
				if ((p[i] & 0xc0) != 0x80)
					break;
			}
			/* Overlong 2-byte forms (0xc0, 0xc1) are invalid too. */
			if (n == 0 || i < n || ch == 0xc0 || ch == 0xc1) {
				fputs("\\ufffd", stdout);
				p++;
				continue;
			}
			fwrite(p, 1, n, stdout);
			p += n;
			continue;
		}
		p++;
	}
	putchar('"');
}

static void print_json(const dcctl_Response *resp)
{
	putchar('[');
	for (pb_size_t i = 0; i < resp->workers_count; i++) {
		const dcctl_WorkerStatus *w = &resp->workers[i];
		static const char *const keys[] = {"name",   "type",   "state",
						   "health", "reason", "last_error"};
		const char *vals[] = {w->name,   w->type,   w->state,
				      w->health, w->reason, w->last_error};

		printf("%s\n  {", i ? "," : "");
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			printf("%s\"%s\": ", k ? ", " : "", keys[k]);
			json_string(vals[k]);
		}
		printf(", \"pid\": %" PRId64 ", \"uptime_s\": %" PRIu64 ", \"restarts\": %" PRIu64
		       ", \"received\": %" PRIu64 ", \"processed\": %" PRIu64
		       ", \"failed\": %" PRIu64 ", \"skipped\": %" PRIu64 "}",
		       w->pid, w->uptime_s, w->restarts, w->received, w->processed, w->failed,
		       w->skipped);
	}
	printf("%s]\n", resp->workers_count ? "\n" : "");
}

int ctl_status(int argc, char **argv, const char *socket_url)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"socket", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	dcctl_Response resp;
	const char *name = NULL;
	bool json = false;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+js:", longopts, NULL)) != -1) {
		if (opt == 'j')
			json = true;
		else if (opt == 's')
			socket_url = optarg;
		else
			return ctl_usage_error("status: bad option");
	}
	if (optind < argc)
		name = argv[optind++];
	if (optind < argc)
		return ctl_usage_error("status: unexpected argument '%s'", argv[optind]);
	rc = ctl_call(socket_url, dcctl_Op_OP_STATUS, name, &resp);
	if (rc == 0) {
		if (json)
			print_json(&resp);
		else
			print_table(&resp);
		if (fflush(stdout) != 0) {
			perror("danube-connectctl: stdout");
			rc = DC_EXIT_FAILURE;
		}
	}
	pb_release(dcctl_Response_fields, &resp);
	return rc;
}

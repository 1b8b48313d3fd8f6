/*
 * danube-connectctl produce: send -m TEXT, or one message per stdin line, to
 * a topic; exit 0 only once the broker acknowledged every message.
 */
#include "ctl.h"
#include "danube_cli.h"
#include "exit_codes.h"

#include "danube/client.h"
#include "log.h"

#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

/* Read no further ahead of the broker than this many unacknowledged messages. */
#define HIGH_WATER 4096
#define LOW_WATER  1024
#define READ_CHUNK 65536

struct produce {
	struct ev_loop *loop;
	struct dn_producer *prod;
	const char *topic;
	struct dn_attr *attrs;
	size_t nattrs;
	const char *key;
	ev_io in_io;     /* stdin as a pipe or terminal */
	ev_idle in_idle; /* stdin as a regular file: never blocks */
	bool in_is_file;
	bool eof;
	char *line;
	size_t line_len, line_cap;
	unsigned long long sent, acked;
	int status; /* -1 while running */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: danube-connectctl produce -t TOPIC [-u URL] [-a KEY=VALUE]... [-k KEY]\n"
		   "           [--reliable] [--partitions N] [--token T] [--tls-ca FILE]\n"
		   "           [-c GLOBAL_FILE] [-m TEXT]\n"
		   "Sends TEXT, or each line of standard input, as one message.\n");
}

static void finish(struct produce *pr, int status)
{
	if (pr->status >= 0)
		return;
	pr->status = status;
	ev_io_stop(pr->loop, &pr->in_io);
	ev_idle_stop(pr->loop, &pr->in_idle);
	ev_break(pr->loop, EVBREAK_ONE);
}

static void maybe_done(struct produce *pr)
{
	if (pr->eof && pr->acked == pr->sent && pr->status < 0) {
		fprintf(stderr, "produced %llu messages to %s\n", pr->acked, pr->topic);
		finish(pr, DC_EXIT_OK);
	}
}

static void input_start(struct produce *pr)
{
	if (pr->eof || pr->status >= 0)
		return;
	if (pr->in_is_file)
		ev_idle_start(pr->loop, &pr->in_idle);
	else
		ev_io_start(pr->loop, &pr->in_io);
}

static void input_stop(struct produce *pr)
{
	ev_io_stop(pr->loop, &pr->in_io);
	ev_idle_stop(pr->loop, &pr->in_idle);
}

static void on_done(void *arg, int code, const char *error)
{
	struct produce *pr = arg;

	if (pr->status >= 0)
		return; /* already decided; closing cancels the rest */
	if (code != DN_OK) {
		fprintf(stderr, "danube-connectctl: %s\n", error);
		finish(pr, ctl_danube_exit_code(code));
		return;
	}
	pr->acked++;
	if (pr->sent - pr->acked <= LOW_WATER)
		input_start(pr);
	maybe_done(pr);
}

static void on_error(void *arg, int code, const char *error)
{
	struct produce *pr = arg;

	if (pr->status >= 0)
		return;
	fprintf(stderr, "danube-connectctl: %s\n", error);
	finish(pr, ctl_danube_exit_code(code));
}

static int send_one(struct produce *pr, const char *data, size_t len)
{
	int rc = dn_producer_send(pr->prod, data, len, pr->attrs, pr->nattrs, pr->key, on_done, pr);

	if (rc == -EMSGSIZE) {
		fprintf(stderr,
			"danube-connectctl: topic %s: a message of %zu bytes is larger than the "
			"message size limit (RESOURCE_EXHAUSTED)\n",
			pr->topic, len);
		finish(pr, DC_EXIT_FAILURE);
		return -1;
	}
	if (rc != 0) {
		/* -EPIPE: the producer failed, and on_error has said why. */
		if (rc != -EPIPE)
			fprintf(stderr, "danube-connectctl: cannot send: %s\n", strerror(-rc));
		finish(pr, DC_EXIT_FAILURE);
		return -1;
	}
	pr->sent++;
	return 0;
}

/* Send every complete line in the buffer, keep the partial rest. */
static void send_lines(struct produce *pr)
{
	size_t start = 0;

	for (size_t i = 0; i < pr->line_len && pr->status < 0; i++) {
		if (pr->line[i] != '\n')
			continue;
		size_t end = i;

		if (end > start && pr->line[end - 1] == '\r')
			end--;
		if (send_one(pr, pr->line + start, end - start) != 0)
			return;
		start = i + 1;
	}
	memmove(pr->line, pr->line + start, pr->line_len - start);
	pr->line_len -= start;
}

static void read_input(struct produce *pr)
{
	ssize_t n;

	if (pr->line_cap - pr->line_len < READ_CHUNK) {
		size_t cap = pr->line_cap * 2 + READ_CHUNK;
		char *nb = realloc(pr->line, cap);

		if (nb == NULL) {
			fprintf(stderr, "danube-connectctl: out of memory\n");
			finish(pr, DC_EXIT_FAILURE);
			return;
		}
		pr->line = nb;
		pr->line_cap = cap;
	}
	n = read(STDIN_FILENO, pr->line + pr->line_len, pr->line_cap - pr->line_len);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		fprintf(stderr, "danube-connectctl: reading standard input: %m\n");
		finish(pr, DC_EXIT_FAILURE);
		return;
	}
	if (n == 0) {
		input_stop(pr);
		/* A last line without its newline is still a message. */
		if (pr->line_len > 0 && send_one(pr, pr->line, pr->line_len) != 0)
			return;
		pr->line_len = 0;
		pr->eof = true;
		maybe_done(pr);
		return;
	}
	pr->line_len += (size_t)n;
	send_lines(pr);
	if (pr->sent - pr->acked >= HIGH_WATER)
		input_stop(pr);
}

static void in_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	read_input(w->data);
}

static void in_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	read_input(w->data);
}

static int parse_attr(struct produce *pr, char *kv)
{
	char *eq = strchr(kv, '=');
	struct dn_attr *na;

	if (eq == NULL || eq == kv) {
		fprintf(stderr, "danube-connectctl: -a wants KEY=VALUE, not '%s'\n", kv);
		return -1;
	}
	na = realloc(pr->attrs, (pr->nattrs + 1) * sizeof(*na));
	if (na == NULL) {
		fprintf(stderr, "danube-connectctl: out of memory\n");
		return -1;
	}
	pr->attrs = na;
	*eq = '\0';
	pr->attrs[pr->nattrs].key = kv;
	pr->attrs[pr->nattrs].value = eq + 1;
	pr->nattrs++;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

int ctl_produce(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"service-url", required_argument, NULL, 'u'},
		{"topic", required_argument, NULL, 't'},
		{"attribute", required_argument, NULL, 'a'},
		{"key", required_argument, NULL, 'k'},
		{"message", required_argument, NULL, 'm'},
		{"config", required_argument, NULL, 'c'},
		{"reliable", no_argument, NULL, 'R'},
		{"partitions", required_argument, NULL, 'P'},
		{"token", required_argument, NULL, 'T'},
		{"tls-ca", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct produce pr = {.status = -1};
	struct dn_client_opts copts = {0};
	struct dn_producer_opts popts = {0};
	struct dn_client *client = NULL;
	const char *message = NULL, *conf = NULL;
	unsigned long partitions = 0;
	char name[96], host[64];
	struct stat st;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "u:t:a:k:m:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			copts.service_url = optarg;
			break;
		case 't':
			pr.topic = optarg;
			break;
		case 'a':
			if (parse_attr(&pr, optarg) != 0) {
				free(pr.attrs);
				return DC_EXIT_USAGE;
			}
			break;
		case 'k':
			pr.key = optarg;
			break;
		case 'm':
			if (message != NULL) {
				fprintf(stderr, "danube-connectctl: -m may be given once\n");
				free(pr.attrs);
				return DC_EXIT_USAGE;
			}
			message = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'R':
			popts.dispatch = DN_DISPATCH_RELIABLE;
			break;
		case 'P':
			if (parse_uint(optarg, 10000, &partitions) != 0) {
				fprintf(stderr,
					"danube-connectctl: --partitions wants a number, "
					"not '%s'\n",
					optarg);
				free(pr.attrs);
				return DC_EXIT_USAGE;
			}
			break;
		case 'T':
			copts.token = optarg;
			break;
		case 'C':
			copts.tls_ca = optarg;
			break;
		case 'h':
			usage(stdout);
			free(pr.attrs);
			return DC_EXIT_OK;
		default:
			usage(stderr);
			free(pr.attrs);
			return DC_EXIT_USAGE;
		}
	}
	if (optind < argc || pr.topic == NULL) {
		if (pr.topic == NULL)
			fprintf(stderr, "danube-connectctl: produce needs -t TOPIC\n");
		else
			fprintf(stderr, "danube-connectctl: unexpected argument '%s'\n",
				argv[optind]);
		usage(stderr);
		free(pr.attrs);
		return DC_EXIT_USAGE;
	}
	if (ctl_danube_defaults(&copts, conf) != 0) {
		free(pr.attrs);
		return DC_EXIT_FAILURE;
	}
	dc_log_open("danube-connectctl", LOG_USER, false, true);
	/* Retries are not news here: the exit status and its one line are. */
	dc_log_set_level(DC_LOG_ERROR);

	pr.loop = ev_default_loop(0);
	rc = dn_client_new(pr.loop, &copts, &client);
	if (rc != 0) {
		fprintf(stderr, "danube-connectctl: cannot create the client: %s\n", strerror(-rc));
		pr.status = DC_EXIT_FAILURE;
		goto out;
	}
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(name, sizeof(name), "danube-connectctl-%s-%ld", host, (long)getpid());
	popts.topic = pr.topic;
	popts.name = name;
	popts.partitions = (uint32_t)partitions;
	/* One message in flight per partition keeps the lines in order. */
	popts.max_inflight = 1;
	popts.retry_limit_ms = 10000;
	rc = dn_producer_new(client, &popts, NULL, on_error, &pr, &pr.prod);
	if (rc != 0) {
		fprintf(stderr, "danube-connectctl: topic %s: cannot create the producer: %s\n",
			pr.topic, strerror(-rc));
		pr.status = rc == -EINVAL ? DC_EXIT_USAGE : DC_EXIT_FAILURE;
		goto out;
	}
	if (message != NULL) {
		pr.eof = true;
		if (send_one(&pr, message, strlen(message)) == 0)
			ev_run(pr.loop, 0);
	} else {
		pr.in_is_file = fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode);
		ev_io_init(&pr.in_io, in_io_cb, STDIN_FILENO, EV_READ);
		pr.in_io.data = &pr;
		ev_idle_init(&pr.in_idle, in_idle_cb);
		pr.in_idle.data = &pr;
		input_start(&pr);
		ev_run(pr.loop, 0);
	}
	if (pr.status < 0) {
		fprintf(stderr, "danube-connectctl: stopped before every message was "
				"acknowledged\n");
		pr.status = DC_EXIT_FAILURE;
	}
out:
	input_stop(&pr);
	dn_producer_close(pr.prod);
	dn_client_free(client);
	dn_shutdown();
	ctl_danube_defaults_free();
	free(pr.line);
	free(pr.attrs);
	return pr.status;
}

/*
 * danube-connectctl consume: print each message's payload on its own line
 * (optionally after its attributes) and acknowledge it once printed.
 */
#include "ctl.h"
#include "danube_cli.h"
#include "exit_codes.h"

#include "danube/client.h"
#include "log.h"

#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

struct consume {
	struct ev_loop *loop;
	struct dn_consumer *cons;
	const char *topic;
	bool attributes;
	bool wait;                /* --wait: a missing topic is waited for */
	unsigned long long limit; /* 0 = until stopped */
	unsigned long long printed, acked;
	unsigned long pending_acks;
	int status; /* -1 while running */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: danube-connectctl consume -t TOPIC [-u URL] [-s SUBSCRIPTION]\n"
		   "           [--name NAME] [--wait] [--type exclusive|shared|failover]\n"
		   "           [-n COUNT] [--attributes] [--token T] [--tls-ca FILE]\n"
		   "           [-c GLOBAL_FILE]\n"
		   "Prints one payload per line and acknowledges it.\n");
}

static void finish(struct consume *co, int status)
{
	if (co->status >= 0)
		return;
	co->status = status;
	ev_break(co->loop, EVBREAK_ONE);
}

static void maybe_done(struct consume *co)
{
	if (co->limit > 0 && co->printed >= co->limit && co->pending_acks == 0)
		finish(co, DC_EXIT_OK);
}

static void on_acked(void *arg, int code, const char *error)
{
	struct consume *co = arg;

	co->pending_acks--;
	/* A lost ack only means the broker delivers that message again. */
	if (code != DN_OK)
		fprintf(stderr, "danube-connectctl: %s\n", error);
	else
		co->acked++;
	maybe_done(co);
}

static void on_message(void *arg, struct dn_message *m)
{
	struct consume *co = arg;
	int rc;

	/* Past the count, leave messages unacknowledged: the broker keeps them. */
	if (co->status >= 0 || (co->limit > 0 && co->printed >= co->limit)) {
		dn_message_free(m);
		return;
	}
	if (co->attributes)
		for (size_t i = 0; i < m->nattrs; i++)
			printf("%s=%s\t", m->attrs[i].key, m->attrs[i].value);
	fwrite(m->payload, 1, m->payload_len, stdout);
	putchar('\n');
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "danube-connectctl: writing standard output: %m\n");
		dn_message_free(m);
		finish(co, DC_EXIT_FAILURE);
		return;
	}
	co->printed++;
	rc = dn_consumer_ack(co->cons, m, on_acked, co);
	if (rc == 0)
		co->pending_acks++;
	else
		fprintf(stderr, "danube-connectctl: topic %s: cannot acknowledge: %s\n", m->topic,
			strerror(-rc));
	dn_message_free(m);
	maybe_done(co);
}

static void on_ready(void *arg)
{
	struct consume *co = arg;

	fprintf(stderr, "consuming %s\n", co->topic);
}

static void on_error(void *arg, int code, const char *error)
{
	struct consume *co = arg;

	if (code == DN_NOT_FOUND && !co->wait)
		fprintf(stderr, "danube-connectctl: %s; --wait waits for the topic to be created\n",
			error);
	else
		fprintf(stderr, "danube-connectctl: %s\n", error);
	finish(co, ctl_danube_exit_code(code));
}

static void on_waiting(void *arg, const char *reason)
{
	fprintf(stderr, "danube-connectctl: %s; waiting for it\n", reason);
}

static void on_gap(void *arg, const char *topic, uint64_t expected, uint64_t got)
{
	fprintf(stderr,
		"danube-connectctl: topic %s: the broker skipped %llu messages (offsets %llu to "
		"%llu)\n",
		topic, (unsigned long long)(got - expected), (unsigned long long)expected,
		(unsigned long long)(got - 1));
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	finish(w->data, DC_EXIT_OK);
}

static int parse_type(const char *s, enum dn_sub_type *out)
{
	static const char *const names[] = {"exclusive", "shared", "failover", "key_shared"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum dn_sub_type)i;
			return 0;
		}
	}
	return -1;
}

int ctl_consume(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"service-url", required_argument, NULL, 'u'},
		{"topic", required_argument, NULL, 't'},
		{"subscription", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'n'},
		{"config", required_argument, NULL, 'c'},
		{"type", required_argument, NULL, 'Y'},
		{"attributes", no_argument, NULL, 'A'},
		{"name", required_argument, NULL, 'N'},
		{"wait", no_argument, NULL, 'W'},
		{"token", required_argument, NULL, 'T'},
		{"tls-ca", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct consume co = {.status = -1};
	struct dn_client_opts copts = {0};
	struct dn_consumer_opts o = {.subscription = "danube-connectctl", .type = DN_SUB_SHARED};
	struct dn_client *client = NULL;
	const char *conf = NULL;
	char name[300], *end;
	const char *cname = NULL;
	ev_signal sigint_w, sigterm_w;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "u:t:s:n:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			copts.service_url = optarg;
			break;
		case 't':
			co.topic = optarg;
			break;
		case 's':
			o.subscription = optarg;
			break;
		case 'n':
			errno = 0;
			co.limit = strtoull(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' ||
			    co.limit == 0) {
				fprintf(stderr,
					"danube-connectctl: -n wants a positive count, not "
					"'%s'\n",
					optarg);
				return DC_EXIT_USAGE;
			}
			break;
		case 'c':
			conf = optarg;
			break;
		case 'Y':
			if (parse_type(optarg, &o.type) != 0) {
				fprintf(stderr,
					"danube-connectctl: --type is exclusive, shared, "
					"failover or key_shared, not '%s'\n",
					optarg);
				return DC_EXIT_USAGE;
			}
			break;
		case 'A':
			co.attributes = true;
			break;
		case 'N':
			if (optarg[0] == '\0') {
				fprintf(stderr, "danube-connectctl: --name wants a name\n");
				return DC_EXIT_USAGE;
			}
			cname = optarg;
			break;
		case 'W':
			co.wait = true;
			break;
		case 'T':
			copts.token = optarg;
			break;
		case 'C':
			copts.tls_ca = optarg;
			break;
		case 'h':
			usage(stdout);
			return DC_EXIT_OK;
		default:
			usage(stderr);
			return DC_EXIT_USAGE;
		}
	}
	if (optind < argc || co.topic == NULL) {
		if (co.topic == NULL)
			fprintf(stderr, "danube-connectctl: consume needs -t TOPIC\n");
		else
			fprintf(stderr, "danube-connectctl: unexpected argument '%s'\n",
				argv[optind]);
		usage(stderr);
		return DC_EXIT_USAGE;
	}
	if (ctl_danube_defaults(&copts, conf) != 0)
		return DC_EXIT_FAILURE;
	dc_log_open("danube-connectctl", LOG_USER, false, true);
	dc_log_set_level(DC_LOG_WARN);

	co.loop = ev_default_loop(0);
	ev_signal_init(&sigint_w, on_signal, SIGINT);
	sigint_w.data = &co;
	ev_signal_init(&sigterm_w, on_signal, SIGTERM);
	sigterm_w.data = &co;
	ev_signal_start(co.loop, &sigint_w);
	ev_signal_start(co.loop, &sigterm_w);
	rc = dn_client_new(co.loop, &copts, &client);
	if (rc != 0) {
		fprintf(stderr, "danube-connectctl: cannot create the client: %s\n", strerror(-rc));
		co.status = DC_EXIT_FAILURE;
		goto out;
	}
	/*
	 * The broker ties an exclusive subscription to one consumer name for
	 * good; the same name takes over. So the default is stable per
	 * subscription: consuming again resumes it.
	 */
	if (cname == NULL) {
		snprintf(name, sizeof(name), "danube-connectctl-%s", o.subscription);
		cname = name;
	}
	o.topic = co.topic;
	o.name = cname;
	o.wait_for_topic = co.wait;
	o.events.waiting = on_waiting;
	o.events.gap = on_gap;
	rc = dn_consumer_new(client, &o, on_ready, on_message, on_error, &co, &co.cons);
	if (rc != 0) {
		fprintf(stderr, "danube-connectctl: topic %s: cannot create the consumer: %s\n",
			co.topic, strerror(-rc));
		co.status = rc == -EINVAL ? DC_EXIT_USAGE : DC_EXIT_FAILURE;
		goto out;
	}
	ev_run(co.loop, 0);
	if (co.status < 0)
		co.status = DC_EXIT_FAILURE;
out:
	ev_signal_stop(co.loop, &sigint_w);
	ev_signal_stop(co.loop, &sigterm_w);
	dn_consumer_close(co.cons);
	dn_client_free(client);
	dn_shutdown();
	ctl_danube_defaults_free();
	return co.status;
}

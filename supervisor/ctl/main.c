/* danube-connectctl: the operator's CLI; global options, then one subcommand. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

static void usage(FILE *f)
{
	fputs("Usage: danube-connectctl [-s URL] COMMAND [ARGS]\n"
	      "\n"
	      "Supervisor commands (over the control socket):\n"
	      "  status [--json] [NAME]   connectors: state, pid, uptime, restarts, counters\n"
	      "  start NAME [--wait [S]]  start a stopped or failed connector\n"
	      "  stop NAME [--wait [S]]   stop a connector\n"
	      "  restart NAME [--wait [S]]  restart a connector\n"
	      "                           --wait: until it is running (stopped), at most\n"
	      "                           S seconds (default 60)\n"
	      "  reload                   re-read the configuration (like SIGHUP)\n"
	      "  metrics                  print the Prometheus metrics\n"
	      "Broker commands (straight to Danube):\n"
	      "  produce -t TOPIC [-u URL] [-m TEXT] ...   publish stdin lines or TEXT\n"
	      "  consume -t TOPIC -s SUB [-u URL] ...      print messages, one per line\n"
	      "\n"
	      "Options:\n"
	      "  -s, --socket URL  control socket (default $DANUBE_CONNECT_SOCKET or\n"
	      "                    " CTL_DEFAULT_SOCKET ")\n"
	      "  -h, --help        this help\n"
	      "  -V, --version     print the version\n"
	      "\n"
	      "Exit status: 0 success, 1 failure, 64 usage, 69 daemon or broker unreachable.\n"
	      "See danube-connectctl(1).\n",
	      f);
}

int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("danube-connectctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try 'danube-connectctl --help')\n", stderr);
	return DC_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static const struct {
		const char *name;
		int (*fn)(int, char **, const char *);
	} commands[] = {
		{"status", ctl_status},   {"start", ctl_start},   {"stop", ctl_stop},
		{"restart", ctl_restart}, {"reload", ctl_reload}, {"metrics", ctl_metrics},
	};
	const char *url = getenv("DANUBE_CONNECT_SOCKET");
	int opt;

	if (!url || !*url)
		url = CTL_DEFAULT_SOCKET;
	/* "+": stop at the subcommand, whose options are its own (consume's -s differs). */
	while ((opt = getopt_long(argc, argv, "+s:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			url = optarg;
			break;
		case 'h':
			usage(stdout);
			return DC_EXIT_OK;
		case 'V':
			printf("danube-connectctl %s\n", DC_VERSION);
			return DC_EXIT_OK;
		default:
			return ctl_usage_error("bad option");
		}
	}
	if (optind == argc)
		return ctl_usage_error("no command given");
	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "produce") == 0)
		return ctl_produce(argc, argv);
	if (strcmp(argv[0], "consume") == 0)
		return ctl_consume(argc, argv);
	if (strcmp(argv[0], "help") == 0) {
		usage(stdout);
		return DC_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[0], commands[i].name) == 0)
			return commands[i].fn(argc, argv, url);
	}
	return ctl_usage_error("unknown command '%s'", argv[0]);
}

/*
 * danube-connectd: command line, --check, and the event loop that supervises
 * one worker process per enabled connector file.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "exit_codes.h"
#include "http.h"
#include "log.h"
#include "spawn.h"
#include "supd.h"
#include "syslog_fwd.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: danube-connectd [-f] [-c FILE] [--check]\n"
		"Supervise one worker process per connector file.\n\n"
		"  -c, --config FILE  global configuration (default %s)\n"
		"  -f, --foreground   log to stderr too, worker output included\n"
		"      --check        validate the configuration and every connector file, "
		"start nothing\n"
		"  -h, --help         this help\n"
		"  -V, --version      print the version\n",
		DC_SYSCONFDIR "/danube-connect/danube-connect.ini");
}

/* One problem on stderr, cleaned and bounded like every configuration problem. */
__attribute__((format(printf, 1, 2))) static void problem(const char *fmt, ...)
{
	struct dc_diag d;
	va_list ap;

	dc_diag_init(&d);
	va_start(ap, fmt);
	if (dc_diag_vadd(&d, fmt, ap) < 0)
		fprintf(stderr, "danube-connectd: out of memory\n");
	va_end(ap);
	dc_diag_write(&d, STDERR_FILENO);
	dc_diag_free(&d);
}

/* Run `WORKER --check -c FILE` with our stdout/stderr: its FILE:LINE lines are ours. */
static int check_worker(const struct dc_supd_conf *c, const struct dc_conn_spec *s)
{
	char *path = NULL, *env_name = NULL, *env_global = NULL, **env = NULL;
	static const char *const drop[] = {"DANUBE_CONNECT_NAME", "DANUBE_CONNECT_GLOBAL_CONFIG",
					   "DANUBE_CONNECT_SUPERVISED", "DANUBE_CONNECT_IPC", NULL};
	struct dc_spawned sp;
	char shown[DC_SHOWN_PATH];
	int status = 0, rv = -1;

	if (asprintf(&path, "%s/%s", c->worker_dir, s->type) < 0) {
		path = NULL;
		goto out;
	}
	dc_log_shown(path, shown, sizeof(shown));
	if (access(path, X_OK) < 0) {
		problem("%s: connector.type: no worker program %s: %s",
			s->type_where != NULL ? s->type_where : s->path, shown, strerror(errno));
		goto out;
	}
	env_name = dc_env_pair("DANUBE_CONNECT_NAME", s->name);
	env_global = dc_env_pair("DANUBE_CONNECT_GLOBAL_CONFIG", c->global_file);
	if (env_name == NULL || env_global == NULL)
		goto out;
	{
		char *add[] = {env_name, env_global, NULL};
		char *argv[] = {path, "--check", "-c", s->path, NULL};
		int err;

		fflush(NULL);
		env = dc_env_build(drop, add);
		err = env == NULL ? -ENOMEM : dc_spawn(path, argv, env, false, &sp);
		if (err < 0) {
			problem("%s: cannot run %s --check: %s", s->path, shown, strerror(-err));
			goto out;
		}
	}
	while (waitpid(sp.pid, &status, 0) < 0) {
		if (errno != EINTR)
			goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		rv = 0;
	else if (WIFEXITED(status))
		problem("%s: %s --check failed (exit status %d)", s->path, shown,
			WEXITSTATUS(status));
	else
		problem("%s: %s --check killed by signal %d", s->path, shown, WTERMSIG(status));
out:
	dc_env_free(env);
	free(env_name);
	free(env_global);
	free(path);
	return rv;
}

static int run_check(const char *config)
{
	struct dc_supd_conf c;
	struct dc_diag diag;
	int bad = 0;

	dc_diag_init(&diag);
	if (dc_supd_conf_load(&c, config, true, &diag) < 0) {
		for (size_t i = 0; i < diag.n; i++)
			fprintf(stderr, "%s\n", diag.lines[i]);
		dc_diag_free(&diag);
		return DC_EXIT_FAILURE;
	}
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "%s\n", diag.lines[i]);
	bad = diag.n > 0;
	dc_diag_free(&diag);
	for (size_t i = 0; i < c.nconns; i++) {
		if (c.conns[i].valid && check_worker(&c, &c.conns[i]) < 0)
			bad = 1;
	}
	if (!bad)
		printf("%s: configuration OK, %zu connector%s\n", config, c.nconns,
		       c.nconns == 1 ? "" : "s");
	dc_supd_conf_free(&c);
	return bad ? DC_EXIT_FAILURE : DC_EXIT_OK;
}

static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct dc_supd *sup = ev_userdata(loop);
	char err[512];

	if (s->signum == SIGHUP) {
		dc_log_info("SIGHUP: reloading the configuration");
		/* A rejected reload has logged its reasons already. */
		(void)dc_supd_reload(sup, err, sizeof(err));
		return;
	}
	dc_log_info("%s: stopping", strsignal(s->signum));
	dc_supd_shutdown(sup);
}

static void on_health_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct dc_supd *sup = ev_userdata(loop);
	uint64_t now = dc_now_ms();

	for (size_t i = 0; i < sup->nworkers; i++)
		dc_worker_health_tick(sup->workers[i], now);
	dc_supd_publish(sup);
	/* A reload may have changed the interval. */
	t->repeat = (double)sup->conf.health_interval_ms / 1000.0;
	ev_timer_again(loop, t);
}

static void on_health_wake(struct ev_loop *loop, ev_async *a, int revents)
{
	struct dc_supd *sup = ev_userdata(loop);

	for (size_t i = 0; i < sup->nworkers; i++)
		dc_worker_health_poll(sup->workers[i]);
}

static void on_sweep(struct ev_loop *loop, ev_idle *idle, int revents)
{
	ev_idle_stop(loop, idle);
	dc_supd_sweep(ev_userdata(loop));
}

static int make_run_dir(const char *dir)
{
	struct stat st;
	char shown[DC_SHOWN_PATH];

	dc_log_shown(dir, shown, sizeof(shown));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		dc_log_error("run_dir %s: %s", shown, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		dc_log_error("run_dir %s: not a directory", shown);
		return -1;
	}
	/* The sockets in it answer anyone who can reach them. */
	if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) < 0) {
		dc_log_error("run_dir %s: chmod 0700: %s", shown, strerror(errno));
		return -1;
	}
	return 0;
}

static int run(struct dc_supd *sup)
{
	sigset_t set;
	char shown[DC_SHOWN_PATH];
	int rv = DC_EXIT_OK;

	/*
	 * Block the loop's signals before nng starts a thread: every thread
	 * inherits the mask, and libev reads them from a signalfd.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	sup->loop = ev_default_loop(EVFLAG_SIGNALFD);
	if (sup->loop == NULL) {
		dc_log_error("cannot create the event loop");
		return DC_EXIT_SOFTWARE;
	}
	ev_set_userdata(sup->loop, sup);
	if (make_run_dir(sup->conf.run_dir) < 0)
		return DC_EXIT_CONFIG;
	if (dc_syslog_fwd_open(&sup->fwd, sup->loop, "/dev/log", sup->conf.facility,
			       DC_SYSLOG_FWD_QUEUE_MAX) < 0) {
		dc_log_error("cannot set up syslog forwarding");
		return DC_EXIT_SOFTWARE;
	}
	if (dc_control_open(&sup->control, sup) < 0) {
		rv = DC_EXIT_CONFIG;
		goto out;
	}
	if (sup->conf.metrics_listen[0] != '\0' &&
	    dc_http_open(&sup->http, sup->loop, sup->conf.metrics_listen) < 0) {
		rv = DC_EXIT_CONFIG;
		goto out;
	}
	ev_signal_init(&sup->sig_term, on_signal, SIGTERM);
	ev_signal_init(&sup->sig_int, on_signal, SIGINT);
	ev_signal_init(&sup->sig_hup, on_signal, SIGHUP);
	ev_signal_start(sup->loop, &sup->sig_term);
	ev_signal_start(sup->loop, &sup->sig_int);
	ev_signal_start(sup->loop, &sup->sig_hup);
	ev_async_init(&sup->health_wake, on_health_wake);
	ev_async_start(sup->loop, &sup->health_wake);
	ev_timer_init(&sup->health_timer, on_health_timer, 0.0,
		      (double)sup->conf.health_interval_ms / 1000.0);
	ev_timer_again(sup->loop, &sup->health_timer);
	ev_idle_init(&sup->sweep, on_sweep);

	dc_log_info("danube-connectd %s started (pid %d), %zu connectors in %s", DC_VERSION,
		    (int)getpid(), sup->conf.nconns,
		    dc_log_shown(sup->conf.connectors_dir, shown, sizeof(shown)));
	if (dc_supd_start_all(sup) < 0) {
		rv = DC_EXIT_SOFTWARE;
		dc_supd_shutdown(sup);
	}
	dc_supd_publish(sup);
	ev_run(sup->loop, 0);
	dc_log_info("danube-connectd stopped");

	ev_idle_stop(sup->loop, &sup->sweep);
	ev_timer_stop(sup->loop, &sup->health_timer);
	ev_async_stop(sup->loop, &sup->health_wake);
	ev_signal_stop(sup->loop, &sup->sig_term);
	ev_signal_stop(sup->loop, &sup->sig_int);
	ev_signal_stop(sup->loop, &sup->sig_hup);
out:
	for (size_t i = 0; i < sup->nworkers; i++)
		dc_worker_free(sup->workers[i]);
	free(sup->workers);
	sup->workers = NULL;
	sup->nworkers = 0;
	dc_http_close(sup->http);
	dc_control_close(sup->control);
	dc_syslog_fwd_close(sup->fwd);
	ev_loop_destroy(sup->loop);
	return rv;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
		{"check", no_argument, NULL, 'C'},        {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	const char *config = DC_SYSCONFDIR "/danube-connect/danube-connect.ini";
	struct dc_supd sup;
	struct dc_diag diag;
	bool check = false;
	int opt, rv;

	memset(&sup, 0, sizeof(sup));
	while ((opt = getopt_long(argc, argv, "c:fhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			sup.foreground = true;
			break;
		case 'C':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return DC_EXIT_OK;
		case 'V':
			printf("danube-connectd %s\n", DC_VERSION);
			return DC_EXIT_OK;
		default:
			usage(stderr);
			return DC_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		char shown[DC_SHOWN_NAME];

		fprintf(stderr, "danube-connectd: unexpected argument '%s'\n",
			dc_log_shown(argv[optind], shown, sizeof(shown)));
		usage(stderr);
		return DC_EXIT_USAGE;
	}
	if (check)
		return run_check(config);

	dc_log_open("danube-connectd", LOG_DAEMON, false, true);
	dc_diag_init(&diag);
	if (dc_supd_conf_load(&sup.conf, config, true, &diag) < 0) {
		for (size_t i = 0; i < diag.n; i++)
			dc_log_error("%s", diag.lines[i]);
		dc_diag_free(&diag);
		return DC_EXIT_CONFIG;
	}
	dc_log_open("danube-connectd", sup.conf.facility, true, sup.foreground);
	dc_log_set_level((enum dc_log_level)sup.conf.log_level);
	for (size_t i = 0; i < diag.n; i++)
		dc_log_error("%s", diag.lines[i]);
	dc_diag_free(&diag);
	rv = run(&sup);
	dc_supd_conf_free(&sup.conf);
	dc_log_close();
	return rv;
}

/* Test helpers around the Python Danube-compatible broker: start on free ports, restart on
 * the same ports and data dir, kill, and run its admin CLI; or, with DC_DANUBE_BROKER, the
 * real broker standalone. */
#include "broker.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define MAX_EXTRA        32
#define START_TIMEOUT_MS 60000
#define ADMIN_TIMEOUT_MS 20000
#define LISTEN_LINE      "danube-broker listening on 127.0.0.1:"
#define MAX_BROKERS      16

struct th_broker {
	char dir[1024];
	char data_dir[1100];
	char *extra[MAX_EXTRA + 1];
	int port; /* 0 until the first start picked one */
	int admin_port;
	int prom_port, raft_port; /* the real broker's */
	bool tls;
	struct th_proc *proc;
	char url[64];
	char addr[64];
	char admin_addr[64];
};

/* Brokers a test did not free stay reachable here, so a test that ends without
 * th_broker_free() is not reported as a leak; the harness kills their processes. */
static struct th_broker *live[MAX_BROKERS];

static void track(struct th_broker *b, bool add)
{
	for (size_t i = 0; i < MAX_BROKERS; i++) {
		if (live[i] == (add ? NULL : b)) {
			live[i] = add ? b : NULL;
			return;
		}
	}
	ck_assert_msg(!add, "too many brokers");
}

static const char *real_broker(void)
{
	const char *p = getenv("DC_DANUBE_BROKER");

	return p && *p ? p : NULL;
}

bool th_broker_is_real(void)
{
	return real_broker() != NULL;
}

bool th_broker_needs_test_broker(const char *why)
{
	if (!th_broker_is_real())
		return false;
	fprintf(stderr, "SKIP (real broker): %s\n", why);
	return true;
}

static const char *script(const char *name)
{
	static char path[2][1024];
	static int slot;

	slot ^= 1;
	snprintf(path[slot], sizeof(path[slot]), "%s/tests/danube-broker/%s", th_src_dir(), name);
	return path[slot];
}

/* Parses the ports from the listening line; false until it has been printed. */
static bool read_ports(struct th_broker *b)
{
	char *out = th_proc_output(b->proc);
	const char *line = out ? strstr(out, LISTEN_LINE) : NULL;
	bool ok = false;
	int port, aport;

	if (line && strchr(line, '\n') &&
	    sscanf(line + strlen(LISTEN_LINE), "%d admin 127.0.0.1:%d", &port, &aport) == 2) {
		b->port = port;
		b->admin_port = aport;
		ok = true;
	}
	free(out);
	return ok;
}

/* standalone: --raft-addr's port is used, its address is broker-addr's (danube-protocol §4.1). */
static void spawn_real(struct th_broker *b)
{
	char addr[4][32];
	char *argv[] = {(char *)real_broker(),
			"--mode",
			"standalone",
			"--data-dir",
			b->data_dir,
			"--broker-addr",
			addr[0],
			"--admin-addr",
			addr[1],
			"--prom-exporter",
			addr[2],
			"--raft-addr",
			addr[3],
			NULL};
	char *env[] = {"RUST_LOG=info", NULL};

	if (b->port == 0) {
		b->port = th_free_port();
		b->admin_port = th_free_port();
		b->prom_port = th_free_port();
		b->raft_port = th_free_port();
	}
	snprintf(addr[0], sizeof(addr[0]), "127.0.0.1:%d", b->port);
	snprintf(addr[1], sizeof(addr[1]), "127.0.0.1:%d", b->admin_port);
	snprintf(addr[2], sizeof(addr[2]), "127.0.0.1:%d", b->prom_port);
	snprintf(addr[3], sizeof(addr[3]), "127.0.0.1:%d", b->raft_port);
	b->proc = th_spawn(b->dir, argv, env);
}

static bool real_listening(struct th_broker *b)
{
	return th_wait_port(b->port, 0) && th_wait_port(b->admin_port, 0);
}

static void spawn(struct th_broker *b)
{
	char port[16], aport[16];
	char *argv[16 + MAX_EXTRA];
	size_t n = 0;

	if (th_broker_is_real()) {
		spawn_real(b);
		return;
	}

	snprintf(port, sizeof(port), "%d", b->port);
	snprintf(aport, sizeof(aport), "%d", b->admin_port);
	argv[n++] = (char *)th_python();
	argv[n++] = (char *)script("danube-broker");
	argv[n++] = "--port";
	argv[n++] = port;
	argv[n++] = "--admin-port";
	argv[n++] = aport;
	argv[n++] = "--data-dir";
	argv[n++] = b->data_dir;
	for (size_t i = 0; b->extra[i]; i++)
		argv[n++] = b->extra[i];
	argv[n] = NULL;
	b->proc = th_spawn(b->dir, argv, NULL);
}

/* Starts the process and waits for its ports. A restart may find its old port still
 * held for a moment (the broker then exits 1): only then it tries again until the deadline. */
static void launch(struct th_broker *b)
{
	th_deadline_t d = th_deadline(START_TIMEOUT_MS);

	for (;;) {
		spawn(b);
		if (th_broker_is_real()) {
			if (TH_WAIT(real_listening(b) || !th_proc_running(b->proc),
				    START_TIMEOUT_MS) &&
			    th_proc_running(b->proc))
				break;
			char *out = th_proc_output(b->proc);

			ck_abort_msg("danube-broker %s did not start: %s", real_broker(),
				     out ? out : "(no output)");
		}
		if (TH_WAIT(read_ports(b) || !th_proc_running(b->proc), START_TIMEOUT_MS) &&
		    read_ports(b))
			break;
		if (th_expired(&d) || th_proc_running(b->proc) || b->port == 0) {
			char *out = th_proc_output(b->proc);

			ck_abort_msg("danube-broker did not start: %s", out ? out : "(no output)");
		}
		th_pause(&d);
	}
	snprintf(b->url, sizeof(b->url), "%s://127.0.0.1:%d", b->tls ? "https" : "http", b->port);
	snprintf(b->addr, sizeof(b->addr), "127.0.0.1:%d", b->port);
	snprintf(b->admin_addr, sizeof(b->admin_addr), "127.0.0.1:%d", b->admin_port);
}

struct th_broker *th_broker_start(const char *dir, const char *const *extra_args)
{
	struct th_broker *b = calloc(1, sizeof(*b));
	size_t n = 0;

	ck_assert_ptr_nonnull(b);
	ck_assert_msg(!th_broker_is_real() || !extra_args || !extra_args[0],
		      "this test needs the test broker's %s; call th_broker_needs_test_broker()",
		      extra_args ? extra_args[0] : "");
	snprintf(b->dir, sizeof(b->dir), "%s", dir ? dir : th_tmpdir());
	snprintf(b->data_dir, sizeof(b->data_dir), "%s/data", b->dir);
	for (; extra_args && extra_args[n]; n++) {
		ck_assert_msg(n < MAX_EXTRA, "too many broker arguments");
		b->extra[n] = strdup(extra_args[n]);
		ck_assert_ptr_nonnull(b->extra[n]);
		if (strcmp(extra_args[n], "--tls-cert") == 0)
			b->tls = true;
	}
	b->extra[n] = NULL;
	track(b, true);
	launch(b);
	return b;
}

const char *th_broker_url(const struct th_broker *b)
{
	return b->url;
}

const char *th_broker_addr(const struct th_broker *b)
{
	return b->addr;
}

const char *th_broker_admin_addr(const struct th_broker *b)
{
	return b->admin_addr;
}

int th_broker_port(const struct th_broker *b)
{
	return b->port;
}

const char *th_broker_dir(const struct th_broker *b)
{
	return b->dir;
}

char *th_broker_log(const struct th_broker *b)
{
	return th_proc_output(b->proc);
}

bool th_broker_running(struct th_broker *b)
{
	return b->proc && th_proc_running(b->proc);
}

int th_broker_admin(struct th_broker *b, const char *cmd, ...)
{
	char *argv[32];
	char *out = NULL;
	size_t n = 0;
	va_list ap;
	const char *arg;
	int rc;

	argv[n++] = (char *)th_python();
	argv[n++] = (char *)script("danube-admin");
	argv[n++] = "-a";
	argv[n++] = b->admin_addr;
	argv[n++] = (char *)cmd;
	va_start(ap, cmd);
	while ((arg = va_arg(ap, const char *)) != NULL) {
		ck_assert_msg(n < 31, "too many danube-admin arguments");
		argv[n++] = (char *)arg;
	}
	va_end(ap);
	argv[n] = NULL;
	rc = th_run(argv, &out, ADMIN_TIMEOUT_MS);
	if (rc != 0)
		fprintf(stderr, "danube-admin %s: exit %d: %s", cmd, rc, out ? out : "");
	free(out);
	return rc;
}

int th_broker_stop(struct th_broker *b)
{
	return th_proc_stop(b->proc, SIGTERM, 10000);
}

int th_broker_kill(struct th_broker *b)
{
	return th_proc_stop(b->proc, SIGKILL, 10000);
}

void th_broker_restart(struct th_broker *b)
{
	/* It could not restart on its own data (openraft, danube-protocol §8). */
	ck_assert_msg(!th_broker_is_real(),
		      "restarting the real broker: call th_broker_needs_test_broker()");
	if (th_proc_running(b->proc))
		th_broker_stop(b);
	launch(b);
}

void th_broker_free(struct th_broker *b)
{
	if (!b)
		return;
	if (b->proc && th_proc_running(b->proc))
		th_broker_stop(b);
	for (size_t i = 0; b->extra[i]; i++)
		free(b->extra[i]);
	track(b, false);
	free(b);
}

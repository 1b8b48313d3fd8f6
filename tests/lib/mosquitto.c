/* Starts, stops and restarts mosquitto for the MQTT connector tests. */
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "mosquitto.h"

struct th_mosq {
	char dir[512];
	char conf[600];
	int port;
	struct th_proc *proc;
};

static void launch(struct th_mosq *m)
{
	char *argv[] = {"/usr/sbin/mosquitto", "-c", m->conf, NULL};

	m->proc = th_spawn(m->dir, argv, NULL);
	ck_assert_msg(th_wait_port(m->port, 10000), "mosquitto did not listen on %d", m->port);
}

/* A test process starts a few brokers at most; static slots need no freeing. */
static struct th_mosq slots[8];
static size_t nslots;

struct th_mosq *th_mosq_start(const char *dir)
{
	/* Run as root, mosquitto would switch to user "mosquitto" and lose the temp dir. */
	const struct passwd *pw = getpwuid(getuid());
	struct th_mosq *m;

	ck_assert_msg(nslots < sizeof(slots) / sizeof(slots[0]), "too many mosquitto brokers");
	m = &slots[nslots++];
	dir = dir ? dir : th_tmpdir();
	ck_assert(strlen(dir) < sizeof(m->dir));
	memcpy(m->dir, dir, strlen(dir) + 1);
	memcpy(m->conf, dir, strlen(dir));
	memcpy(m->conf + strlen(dir), "/mosquitto.conf", sizeof("/mosquitto.conf"));
	m->port = th_free_port();
	/*
	 * Unlimited queues: a persistent session must keep every QoS 1 message
	 * while its client is away (the default keeps 1000).
	 */
	ck_assert_int_eq(th_write_file(m->conf,
				       "listener %d 127.0.0.1\nallow_anonymous true\nuser %s\n"
				       "persistence true\npersistence_location %s/\n"
				       "max_queued_messages 0\nmax_inflight_messages 0\n"
				       "log_dest stdout\nlog_type error\nlog_type warning\n"
				       "log_type notice\nlog_type information\n",
				       m->port, pw ? pw->pw_name : "root", m->dir),
			 0);
	launch(m);
	return m;
}

int th_mosq_port(const struct th_mosq *m)
{
	return m->port;
}

void th_mosq_stop(struct th_mosq *m)
{
	if (m->proc && th_proc_running(m->proc))
		th_proc_stop(m->proc, SIGTERM, 10000);
}

void th_mosq_restart(struct th_mosq *m)
{
	th_mosq_stop(m);
	launch(m);
}

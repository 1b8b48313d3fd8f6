/*
 * source-mqtt and sink-mqtt against a real mosquitto and the Danube test
 * broker, both started by the test on free ports.
 */
#include "broker.h"
#include "control.pb.h"
#include "harness.h"
#include "mosquitto.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *ctl(void)
{
	return th_build_path("danube-connectctl");
}

static struct th_broker *danube(void)
{
	struct th_broker *b = th_broker_start(th_tmpdir(), NULL);

	ck_assert_ptr_nonnull(b);
	return b;
}

static void reliable_topic(struct th_broker *b, const char *topic)
{
	ck_assert_int_eq(th_broker_admin(b, "create-topic", topic, "--reliable", NULL), 0);
}

/* Writes dir/NAME.ini: [connector], [danube] with the broker, then extra. */
static const char *conf(const char *dir, const char *name, const char *type, struct th_broker *b,
			const char *extra)
{
	static char path[4][512];
	static int slot;
	char *p = path[slot++ % 4];

	snprintf(p, 512, "%s/%s.ini", dir, name);
	ck_assert_int_eq(th_write_file(p,
				       "[connector]\ntype = %s\nlog_level = debug\n\n"
				       "[danube]\nservice_url = %s\ndispatch = reliable\n%s",
				       type, th_broker_url(b), extra),
			 0);
	return p;
}

static struct th_proc *worker(const char *dir, const char *prog, const char *file)
{
	char *argv[] = {(char *)th_build_path(prog), "-c", (char *)file, NULL};

	return th_spawn(dir, argv, NULL);
}

/* A Danube consumer printing attributes; waits until it is subscribed. */
static struct th_proc *consumer(const char *dir, struct th_broker *b, const char *topic,
				const char *sub)
{
	char want[256];
	char *argv[] = {(char *)ctl(), "consume",     "-u",           (char *)th_broker_url(b),
			"-t",          (char *)topic, "-s",           (char *)sub,
			"--type",      "exclusive",   "--attributes", NULL};
	struct th_proc *c = th_spawn(dir, argv, NULL);

	snprintf(want, sizeof(want), "consuming %s", topic);
	ck_assert(TH_WAIT(th_proc_output_contains(c, want), 10000));
	return c;
}

/* Publishes "PREFIX-FROM".."PREFIX-TO" to an MQTT topic at QoS 1, in the background. */
static struct th_proc *publisher(const char *dir, int port, const char *topic, const char *prefix,
				 int from, int to)
{
	char cmd[512];
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};

	snprintf(cmd, sizeof(cmd),
		 "seq %d %d | sed 's/^/%s-/' | mosquitto_pub -h 127.0.0.1 -p %d -q 1 -l -t '%s'",
		 from, to, prefix, port, topic);
	return th_spawn(dir, argv, NULL);
}

static void publish(const char *dir, int port, const char *topic, const char *prefix, int from,
		    int to)
{
	struct th_proc *p = publisher(dir, port, topic, prefix, from, to);
	int status;

	ck_assert(th_proc_wait(p, 30000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
}

/* Lines of a consumer's output that carry a message (they have mqtt.topic=). */
static int message_lines(const struct th_proc *c)
{
	return th_proc_output_count(c, "mqtt.topic=");
}

/* The payload: what follows the last tab of a consumer line. */
static const char *payload_of(const char *line)
{
	const char *tab = strrchr(line, '\t');

	return tab ? tab + 1 : line;
}

static const char *attr_of(const char *line, const char *key, char *buf, size_t len)
{
	char want[64];
	const char *a, *end;

	snprintf(want, sizeof(want), "%s=", key);
	for (a = line; (a = strstr(a, want)); a++)
		if (a == line || a[-1] == '\t')
			break;
	if (!a)
		return NULL;
	a += strlen(want);
	end = strchr(a, '\t');
	snprintf(buf, len, "%.*s", end ? (int)(end - a) : (int)strlen(a), a);
	return buf;
}

/* How many distinct payloads "PREFIX-N" (1 <= N <= max) a consumer printed. */
static int distinct(const struct th_proc *c, const char *prefix, int max)
{
	char *out = th_proc_output(c), *save = NULL;
	char *seen = calloc((size_t)max + 1, 1);
	size_t plen = strlen(prefix);
	int n = 0;

	ck_assert_ptr_nonnull(seen);
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *p = payload_of(line);
		int i;

		if (!strstr(line, "mqtt.topic=") || strncmp(p, prefix, plen) != 0 || p[plen] != '-')
			continue;
		i = atoi(p + plen + 1);
		if (i >= 1 && i <= max && !seen[i]) {
			seen[i] = 1;
			n++;
		}
	}
	free(seen);
	free(out);
	return n;
}

/* As distinct, over the outputs of the consumers cs[0..n) together. */
static int distinct_all(struct th_proc *const *cs, size_t n, const char *prefix, int max)
{
	char *seen = calloc((size_t)max + 1, 1);
	size_t plen = strlen(prefix);
	int got = 0;

	ck_assert_ptr_nonnull(seen);
	for (size_t k = 0; k < n; k++) {
		char *out = th_proc_output(cs[k]), *save = NULL;

		for (char *line = strtok_r(out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			const char *p = payload_of(line);
			int i;

			if (!strstr(line, "mqtt.topic=") || strncmp(p, prefix, plen) != 0 ||
			    p[plen] != '-')
				continue;
			i = atoi(p + plen + 1);
			if (i >= 1 && i <= max && !seen[i]) {
				seen[i] = 1;
				got++;
			}
		}
		free(out);
	}
	free(seen);
	return got;
}

/*
 * Every line of c is a message of one of the MQTT topics; per topic the
 * payloads are PREFIX-1..PREFIX-count in order, with the attributes set.
 */
static void check_stream(const struct th_proc *c, const char *const *topics,
			 const char *const *prefixes, size_t ntopics, int count)
{
	char *out = th_proc_output(c), *save = NULL, buf[256], want[64];
	int next[8];

	ck_assert(ntopics <= 8);
	for (size_t t = 0; t < ntopics; t++)
		next[t] = 1;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *topic = attr_of(line, "mqtt.topic", buf, sizeof(buf));
		size_t t;

		if (!topic)
			continue;
		for (t = 0; t < ntopics && strcmp(topics[t], topic) != 0; t++)
			;
		ck_assert_msg(t < ntopics, "unexpected topic %s", topic);
		snprintf(want, sizeof(want), "%s-%d", prefixes[t], next[t]);
		ck_assert_msg(strcmp(payload_of(line), want) == 0, "%s: want %s, got %s", topic,
			      want, payload_of(line));
		next[t]++;
		ck_assert_str_eq(attr_of(line, "mqtt.qos", buf, sizeof(buf)), "1");
		ck_assert_str_eq(attr_of(line, "mqtt.retain", buf, sizeof(buf)), "false");
		ck_assert_ptr_nonnull(attr_of(line, "mqtt.dup", buf, sizeof(buf)));
		ck_assert_str_eq(attr_of(line, "source", buf, sizeof(buf)), "mqtt");
	}
	for (size_t t = 0; t < ntopics; t++)
		ck_assert_msg(next[t] == count + 1, "%s: %d messages", topics[t], next[t] - 1);
	free(out);
}

static const char *mqtt_section(struct th_mosq *m, const char *extra)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "[mqtt]\nport = %d\nreconnect_backoff_ms = 100\n"
		 "reconnect_backoff_max_ms = 1000\n%s",
		 th_mosq_port(m), extra);
	return buf;
}

/* Waits until the worker's subscriptions (n of them, in total so far) are granted. */
static void wait_subscribed(struct th_proc *w, int n)
{
	ck_assert_msg(TH_WAIT(th_proc_output_count(w, "granted qos") >= n, 15000),
		      "subscriptions not granted");
}

START_TEST(source_routes_10k_messages_in_order_with_attributes)
{
	struct th_broker *b = danube();
	struct th_mosq *m = th_mosq_start(NULL);
	const char *dir = th_tmpdir();
	char cfg[2048];
	struct th_proc *pubs[4];
	int status;

	reliable_topic(b, "/default/temps");
	reliable_topic(b, "/default/hum");
	reliable_topic(b, "/default/misc");
	struct th_proc *ct = consumer(dir, b, "/default/temps", "t");
	struct th_proc *chum = consumer(dir, b, "/default/hum", "t");
	struct th_proc *cm = consumer(dir, b, "/default/misc", "t");
	snprintf(cfg, sizeof(cfg),
		 "%s\n[route temps]\nmqtt_topic = sensors/+/temp\ndanube_topic = /default/temps\n"
		 "[route hum]\nmqtt_topic = sensors/+/hum\nqos = 1\ndanube_topic = /default/hum\n"
		 "[route misc]\nmqtt_topic = misc/#\ndanube_topic = /default/misc\n",
		 mqtt_section(m, ""));
	struct th_proc *w =
		worker(dir, "workers/source-mqtt", conf(dir, "src", "source-mqtt", b, cfg));
	wait_subscribed(w, 3);
	pubs[0] = publisher(dir, th_mosq_port(m), "sensors/s1/temp", "a", 1, 2500);
	pubs[1] = publisher(dir, th_mosq_port(m), "sensors/s2/temp", "b", 1, 2500);
	pubs[2] = publisher(dir, th_mosq_port(m), "sensors/s1/hum", "c", 1, 2500);
	pubs[3] = publisher(dir, th_mosq_port(m), "misc/x/y", "d", 1, 2500);
	for (int i = 0; i < 4; i++) {
		ck_assert(th_proc_wait(pubs[i], 60000, &status));
		ck_assert_int_eq(th_exit_code(status), 0);
	}
	ck_assert_msg(TH_WAIT(message_lines(ct) >= 5000 && message_lines(chum) >= 2500 &&
				      message_lines(cm) >= 2500,
			      60000),
		      "got %d %d %d", message_lines(ct), message_lines(chum), message_lines(cm));
	{
		const char *tt[] = {"sensors/s1/temp", "sensors/s2/temp"}, *tp[] = {"a", "b"};
		const char *ht[] = {"sensors/s1/hum"}, *hp[] = {"c"};
		const char *mt[] = {"misc/x/y"}, *mp[] = {"d"};

		check_stream(ct, tt, tp, 2, 2500);
		check_stream(chum, ht, hp, 1, 2500);
		check_stream(cm, mt, mp, 1, 2500);
	}
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(source_reconnects_after_mqtt_broker_restart)
{
	struct th_broker *b = danube();
	struct th_mosq *m = th_mosq_start(NULL);
	const char *dir = th_tmpdir();
	char cfg[2048];

	reliable_topic(b, "/default/r");
	struct th_proc *c = consumer(dir, b, "/default/r", "t");
	snprintf(cfg, sizeof(cfg), "%s\n[route all]\nmqtt_topic = r/#\ndanube_topic = /default/r\n",
		 mqtt_section(m, ""));
	struct th_proc *w =
		worker(dir, "workers/source-mqtt", conf(dir, "src", "source-mqtt", b, cfg));
	wait_subscribed(w, 1);
	publish(dir, th_mosq_port(m), "r/1", "r", 1, 100);
	ck_assert(TH_WAIT(distinct(c, "r", 200) == 100, 20000));
	th_mosq_restart(m);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connection to"), 10000));
	wait_subscribed(w, 2);
	publish(dir, th_mosq_port(m), "r/1", "r", 101, 200);
	ck_assert(TH_WAIT(distinct(c, "r", 200) == 200, 20000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* The worker at url (its IPC socket) answers health with state and a reason holding needle. */
static bool health_is(const char *url, dcctl_HealthState state, const char *needle)
{
	dcctl_Request req = dcctl_Request_init_default;
	dcctl_Response resp = dcctl_Response_init_default;
	uint8_t buf[64];
	pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));
	nng_msg *msg = NULL;
	nng_socket s;
	pb_istream_t is;
	bool ok = false;

	req.version = dcctl_Version_VERSION_CURRENT;
	req.op = dcctl_Op_OP_HEALTH;
	if (!pb_encode(&os, dcctl_Request_fields, &req) || nng_req0_open(&s) != 0)
		return false;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
	if (nng_dial(s, url, NULL, 0) == 0 && nng_send(s, buf, os.bytes_written, 0) == 0 &&
	    nng_recvmsg(s, &msg, 0) == 0) {
		is = pb_istream_from_buffer(nng_msg_body(msg), nng_msg_len(msg));
		ok = pb_decode(&is, dcctl_Response_fields, &resp) && resp.has_health &&
		     resp.health.state == state &&
		     (!needle || (resp.health.reason && strstr(resp.health.reason, needle)));
		pb_release(dcctl_Response_fields, &resp);
		nng_msg_free(msg);
	}
	nng_close(s);
	return ok;
}

START_TEST(source_pauses_while_danube_down_then_delivers_all)
{
	struct th_broker *b = danube();
	struct th_mosq *m = th_mosq_start(NULL);
	const char *dir = th_tmpdir();
	char cfg[2048], url[600], env[620];
	int status;

	reliable_topic(b, "/default/p");
	/* The subscription exists before the broker goes away, so it keeps what comes. */
	struct th_proc *c = consumer(dir, b, "/default/p", "keep");
	th_proc_stop(c, SIGTERM, 5000);
	snprintf(cfg, sizeof(cfg),
		 "[runtime]\nqueue_size = 50\n%s\n[route all]\nmqtt_topic = p/#\n"
		 "danube_topic = /default/p\n",
		 mqtt_section(m, "client_id = pause-test\n"));
	snprintf(url, sizeof(url), "ipc://%s/w.sock", dir);
	snprintf(env, sizeof(env), "DANUBE_CONNECT_IPC=%s", url);
	char *argv[] = {(char *)th_build_path("workers/source-mqtt"), "-c",
			(char *)conf(dir, "src", "source-mqtt", b, cfg), NULL};
	char *envv[] = {env, NULL};
	struct th_proc *w = th_spawn(dir, argv, envv);
	wait_subscribed(w, 1);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	ck_assert(TH_WAIT(health_is(url, dcctl_HealthState_HEALTH_READY, NULL), 10000));
	th_broker_stop(b);
	publish(dir, th_mosq_port(m), "p/1", "p", 1, 500);
	/* The runtime's queue is full: the source stopped reading MQTT. */
	ck_assert(TH_WAIT(th_proc_output_contains(w, "pausing the source"), 20000));
	ck_assert(th_proc_running(w));
	/* The reason names Danube and the broker's address, whichever failure it was. */
	ck_assert(TH_WAIT(
		health_is(url, dcctl_HealthState_HEALTH_DEGRADED, "danube: ") &&
			health_is(url, dcctl_HealthState_HEALTH_DEGRADED, th_broker_addr(b)),
		15000));
	th_broker_restart(b);
	ck_assert(TH_WAIT(health_is(url, dcctl_HealthState_HEALTH_READY, NULL), 20000));
	c = consumer(dir, b, "/default/p", "keep");
	ck_assert_msg(TH_WAIT(distinct(c, "p", 500) == 500, 60000), "got %d",
		      distinct(c, "p", 500));
	status = th_proc_stop(w, SIGTERM, 10000);
	ck_assert_int_eq(th_exit_code(status), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* A publisher that goes on: ROUNDS rounds of 50 messages "k-N" from first on. */
static struct th_proc *steady_publisher(const char *dir, struct th_mosq *m, int first, int rounds)
{
	static char cmd[512];
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};

	snprintf(cmd, sizeof(cmd),
		 "for r in $(seq 0 %d); do seq $((%d+r*50)) $((%d+r*50+49)) | sed 's/^/k-/' | "
		 "mosquitto_pub -h 127.0.0.1 -p %d -q 1 -l -t k/1 || exit 1; done",
		 rounds - 1, first, first, th_mosq_port(m));
	return th_spawn(dir, argv, NULL);
}

static struct th_proc *kill_test_worker(const char *dir, struct th_broker *b, struct th_mosq *m,
					const char **file)
{
	char cfg[2048];

	/* The spool keeps what MQTT acknowledged and Danube did not, across a SIGKILL. */
	snprintf(cfg, sizeof(cfg),
		 "[runtime]\nspool_dir = %s/spool\n%s\n[route all]\nmqtt_topic = k/#\n"
		 "danube_topic = /default/k\n",
		 dir, mqtt_section(m, "client_id = kill-test\nclean_session = false\n"));
	*file = conf(dir, "src", "source-mqtt", b, cfg);
	return worker(dir, "workers/source-mqtt", *file);
}

/*
 * SIGKILL in the middle of a stream, while Danube does not answer: the
 * records MQTT already acknowledged wait in the worker's spool and are
 * replayed by the next worker; what MQTT published meanwhile waits in the
 * persistent session. Everything arrives.
 */
START_TEST(source_worker_killed_and_restarted_loses_nothing)
{
	struct th_broker *b = danube();
	struct th_mosq *m = th_mosq_start(NULL);
	const char *dir = th_tmpdir(), *file;
	struct th_proc *pub, *cs[2];
	int status;

	reliable_topic(b, "/default/k");
	cs[0] = consumer(dir, b, "/default/k", "t");
	struct th_proc *w = kill_test_worker(dir, b, m, &file);
	wait_subscribed(w, 1);
	pub = steady_publisher(dir, m, 1, 40);
	ck_assert(TH_WAIT(distinct(cs[0], "k", 2000) >= 300, 30000));
	/* The subscription keeps its place while the broker is away. */
	th_proc_stop(cs[0], SIGTERM, 5000);
	th_broker_stop(b);
	/* A send failed: the worker holds records only MQTT acknowledged. */
	ck_assert(TH_WAIT(th_proc_output_contains(w, "reconnecting"), 20000));
	ck_assert(th_proc_running(pub));
	th_proc_kill(w, SIGKILL);
	ck_assert(th_proc_wait(w, 5000, NULL));
	th_broker_restart(b);
	cs[1] = consumer(dir, b, "/default/k", "t");
	w = worker(dir, "workers/source-mqtt", file);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "replaying"), 10000));
	ck_assert(th_proc_wait(pub, 60000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	ck_assert_msg(TH_WAIT(distinct_all(cs, 2, "k", 2000) == 2000, 60000), "got %d of 2000",
		      distinct_all(cs, 2, "k", 2000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* SIGTERM in the middle of a stream: the worker hands over what it took, then a new one goes on. */
START_TEST(source_worker_stopped_while_publishing_loses_nothing)
{
	struct th_broker *b = danube();
	struct th_mosq *m = th_mosq_start(NULL);
	const char *dir = th_tmpdir(), *file;
	struct th_proc *pub;
	int status;

	reliable_topic(b, "/default/k");
	struct th_proc *c = consumer(dir, b, "/default/k", "t");
	struct th_proc *w = kill_test_worker(dir, b, m, &file);
	wait_subscribed(w, 1);
	pub = steady_publisher(dir, m, 1, 40);
	ck_assert(TH_WAIT(distinct(c, "k", 2000) >= 300, 30000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
	ck_assert(!th_proc_output_contains(w, "lost"));
	w = worker(dir, "workers/source-mqtt", file);
	ck_assert(th_proc_wait(pub, 60000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	ck_assert_msg(TH_WAIT(distinct(c, "k", 2000) == 2000, 60000), "got %d of 2000",
		      distinct(c, "k", 2000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* An MQTT subscriber (mosquitto_sub) with a persistent session, printing "topic payload". */
static struct th_proc *mqtt_sub(const char *dir, struct th_mosq *m, const char *filter)
{
	char port[16];
	char *argv[] = {"/usr/bin/mosquitto_sub",
			"-h",
			"127.0.0.1",
			"-p",
			port,
			"-q",
			"1",
			"-c",
			"-i",
			"test-sub",
			"-v",
			"-t",
			(char *)filter,
			NULL};
	struct th_proc *s;

	snprintf(port, sizeof(port), "%d", th_mosq_port(m));
	s = th_spawn(dir, argv, NULL);
	ck_assert(TH_WAIT(th_proc_output_contains(s, "") && th_proc_running(s), 1000));
	return s;
}

static void produce(struct th_broker *b, const char *topic, const char *attr, const char *lines)
{
	char *out = NULL;
	char *argv[] = {(char *)ctl(), "produce",     "-u",         (char *)th_broker_url(b),
			"-t",          (char *)topic, "--reliable", "-a",
			(char *)attr,  NULL};
	int rc = th_run_input(argv, lines, &out, 30000);

	ck_assert_msg(rc == 0, "produce exited %d: %s", rc, out);
	free(out);
}

static char *numbered(const char *prefix, int n)
{
	size_t cap = (size_t)n * 24 + 1, len = 0;
	char *s = malloc(cap);

	ck_assert_ptr_nonnull(s);
	for (int i = 1; i <= n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s-%d\n", prefix, i);
	return s;
}

/* "TOPIC PREFIX-1" .. "TOPIC PREFIX-n" each appear in the subscriber's output. */
static int arrived(const struct th_proc *s, const char *topic, const char *prefix, int n)
{
	char want[256];
	int got = 0;

	for (int i = 1; i <= n; i++) {
		snprintf(want, sizeof(want), "%s %s-%d\n", topic, prefix, i);
		got += th_proc_output_contains(s, want);
	}
	return got;
}

START_TEST(sink_publishes_danube_messages_to_mqtt_in_order)
{
	struct th_broker *b = danube();
	struct th_mosq *m = th_mosq_start(NULL);
	const char *dir = th_tmpdir();
	char cfg[2048], *lines = numbered("s", 200), *out, want[64];
	const char *at;

	reliable_topic(b, "/default/in");
	struct th_proc *sub = mqtt_sub(dir, m, "out/#");
	snprintf(cfg, sizeof(cfg), "topic = /default/in\nsubscription = mq\n%s",
		 mqtt_section(m, "topic = out/{attr.dev}/data\nqos = 2\n"));
	struct th_proc *w = worker(dir, "workers/sink-mqtt", conf(dir, "snk", "sink-mqtt", b, cfg));
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube") &&
				  th_proc_output_contains(w, "mqtt: connected"),
			  15000));
	produce(b, "/default/in", "dev=d7", lines);
	ck_assert_msg(TH_WAIT(arrived(sub, "out/d7/data", "s", 200) == 200, 30000), "got %d",
		      arrived(sub, "out/d7/data", "s", 200));
	out = th_proc_output(sub);
	at = out;
	for (int i = 1; i <= 200; i++) {
		snprintf(want, sizeof(want), "out/d7/data s-%d\n", i);
		at = strstr(at, want);
		ck_assert_msg(at != NULL, "%s out of order", want);
	}
	free(out);
	free(lines);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(sink_acks_nothing_while_mqtt_down_and_loses_nothing)
{
	struct th_broker *b = danube();
	struct th_mosq *m = th_mosq_start(NULL);
	const char *dir = th_tmpdir();
	char cfg[2048], *lines = numbered("h", 50);
	const char *file;

	reliable_topic(b, "/default/in");
	/* Creates the subscriber's persistent session, then leaves with the broker. */
	struct th_proc *sub = mqtt_sub(dir, m, "held/#");
	snprintf(cfg, sizeof(cfg), "topic = /default/in\nsubscription = mq\n%s",
		 mqtt_section(m, "qos = 1\n"));
	file = conf(dir, "snk", "sink-mqtt", b, cfg);
	struct th_proc *w = worker(dir, "workers/sink-mqtt", file);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube") &&
				  th_proc_output_contains(w, "mqtt: connected"),
			  15000));
	th_mosq_stop(m);
	th_proc_stop(sub, SIGTERM, 5000);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connection to"), 10000));
	produce(b, "/default/in", "mqtt.topic=held/x", lines);
	/* Had the sink acknowledged anything, a new worker would not get it again. */
	ck_assert(TH_WAIT(th_proc_output_contains(w, "cannot connect"), 10000));
	th_proc_kill(w, SIGKILL);
	ck_assert(th_proc_wait(w, 5000, NULL));
	w = worker(dir, "workers/sink-mqtt", file);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 15000));
	th_mosq_restart(m);
	sub = mqtt_sub(dir, m, "held/#");
	ck_assert_msg(TH_WAIT(arrived(sub, "held/x", "h", 50) == 50, 30000), "got %d",
		      arrived(sub, "held/x", "h", 50));
	free(lines);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* "danube-connectctl -s ipc://RUN/control.sock ARG" succeeded and printed every needle. */
static bool ctl_shows(const char *run, const char *arg, const char *n1, const char *n2,
		      const char *n3)
{
	char sock[600], *out = NULL;
	char *argv[] = {(char *)ctl(), "-s", sock, (char *)arg, NULL};
	bool ok;

	snprintf(sock, sizeof(sock), "ipc://%s/control.sock", run);
	ok = th_run(argv, &out, 10000) == 0 && strstr(out, n1) && (!n2 || strstr(out, n2)) &&
	     (!n3 || strstr(out, n3));
	free(out);
	return ok;
}

/* Both connectors under danube-connectd: MQTT -> Danube -> MQTT, seen in status and metrics. */
START_TEST(both_run_under_the_supervisor_with_metrics)
{
	struct th_broker *b = danube();
	struct th_mosq *m = th_mosq_start(NULL);
	const char *dir = th_tmpdir();
	char run[512], conn[512], path[600], global[600];
	int status;

	reliable_topic(b, "/default/sv");
	snprintf(run, sizeof(run), "%s/run", dir);
	snprintf(conn, sizeof(conn), "%s/conn.d", dir);
	ck_assert_int_eq(mkdir(conn, 0755), 0);
	snprintf(global, sizeof(global), "%s/danube-connect.ini", dir);
	ck_assert_int_eq(th_write_file(global,
				       "[supervisor]\nconnectors_dir = %s\nrun_dir = %s\n"
				       "worker_dir = %s\nmetrics_listen =\nlog_level = debug\n"
				       "[danube]\nservice_url = %s\n",
				       conn, run, th_build_path("workers"), th_broker_url(b)),
			 0);
	snprintf(path, sizeof(path), "%s/sensors.ini", conn);
	ck_assert_int_eq(
		th_write_file(path,
			      "[connector]\ntype = source-mqtt\n[danube]\ndispatch = reliable\n"
			      "[mqtt]\nport = %d\n[route sv]\nmqtt_topic = sv/#\n"
			      "danube_topic = /default/sv\n",
			      th_mosq_port(m)),
		0);
	snprintf(path, sizeof(path), "%s/out.ini", conn);
	ck_assert_int_eq(
		th_write_file(path,
			      "[connector]\ntype = sink-mqtt\n[danube]\ntopic = /default/sv\n"
			      "subscription = out\n[runtime]\nbatch_timeout_ms = 100\n"
			      "[mqtt]\nport = %d\ntopic = loop/{attr.mqtt.topic}\n",
			      th_mosq_port(m)),
		0);
	struct th_proc *sub = mqtt_sub(dir, m, "loop/#");
	char *dargv[] = {(char *)th_build_path("danube-connectd"), "-f", "-c", global, NULL};
	struct th_proc *d = th_spawn(dir, dargv, NULL);
	ck_assert_msg(TH_WAIT(ctl_shows(run, "status", "sensors", "out", NULL) &&
				      !ctl_shows(run, "status", "starting", NULL, NULL) &&
				      !ctl_shows(run, "status", "backoff", NULL, NULL),
			      20000),
		      "not both running");
	ck_assert(ctl_shows(run, "status", "running", NULL, NULL));
	/* The source's subscription is granted once the worker is running. */
	ck_assert(TH_WAIT(th_proc_output_contains(d, "granted qos"), 10000));
	publish(dir, th_mosq_port(m), "sv/1", "v", 1, 100);
	ck_assert_msg(TH_WAIT(arrived(sub, "loop/sv/1", "v", 100) == 100, 30000), "got %d",
		      arrived(sub, "loop/sv/1", "v", 100));
	ck_assert(
		TH_WAIT(ctl_shows(run, "metrics",
				  "danube_connector_messages_received_total{connector=\"sensors\","
				  "topic=\"/default/sv\"} 100",
				  "danube_connector_messages_processed_total{connector=\"out\","
				  "topic=\"/default/sv\"} 100",
				  NULL),
			10000));
	status = th_proc_stop(d, SIGTERM, 15000);
	ck_assert_int_eq(th_exit_code(status), 0);
	ck_assert(th_proc_clean(d));
}
END_TEST

/* Runs --check on a source-mqtt file; expects 78 and where in the output. */
static void check_fails_at(const char *extra, const char *where)
{
	const char *dir = th_tmpdir();
	char path[512], *out = NULL;

	snprintf(path, sizeof(path), "%s/bad.ini", dir);
	ck_assert_int_eq(th_write_file(path,
				       "[connector]\ntype = source-mqtt\nlog_level = debug\n\n"
				       "[danube]\nservice_url = http://127.0.0.1:1\n"
				       "dispatch = reliable\n%s",
				       extra),
			 0);
	char *argv[] = {(char *)th_build_path("workers/source-mqtt"), "--check", "-c", path, NULL};

	ck_assert_int_eq(th_run(argv, &out, 10000), 78);
	ck_assert_msg(strstr(out, where), "no %s in: %s", where, out);
	free(out);
}

START_TEST(check_reports_bad_mqtt_config_with_file_line)
{
	check_fails_at(
		"[mqtt]\nprotocol = 4\n[route x]\nmqtt_topic = a/#\ndanube_topic = /default/x\n",
		"bad.ini:9: mqtt.protocol");
	check_fails_at(
		"[mqtt]\nprotocol = 5\n[route x]\nmqtt_topic = a/#/b\ndanube_topic = /default/x\n",
		"bad.ini:11: mqtt_topic is not a valid MQTT topic filter");
	check_fails_at("[mqtt]\ntls_cert = /c.pem\n[route x]\nmqtt_topic = a/#\n",
		       "bad.ini:9: tls_cert");
	check_fails_at("[mqtt]\nport = 1883\n", "at least one [route NAME]");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("mqtt");
	TCase *tc = tcase_create("mqtt");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, check_reports_bad_mqtt_config_with_file_line);
	tcase_add_test(tc, source_routes_10k_messages_in_order_with_attributes);
	tcase_add_test(tc, source_reconnects_after_mqtt_broker_restart);
	tcase_add_test(tc, source_pauses_while_danube_down_then_delivers_all);
	tcase_add_test(tc, source_worker_killed_and_restarted_loses_nothing);
	tcase_add_test(tc, source_worker_stopped_while_publishing_loses_nothing);
	tcase_add_test(tc, sink_publishes_danube_messages_to_mqtt_in_order);
	tcase_add_test(tc, sink_acks_nothing_while_mqtt_down_and_loses_nothing);
	tcase_add_test(tc, both_run_under_the_supervisor_with_metrics);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)

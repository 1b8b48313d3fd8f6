/*
 * A real mosquitto broker for integration tests: on a free port in a temp
 * dir, persistence in that dir so a restart keeps persistent sessions.
 */
#ifndef DC_TEST_MOSQUITTO_H
#define DC_TEST_MOSQUITTO_H

struct th_mosq;

/* Starts it in dir (th_tmpdir() when NULL) and waits for its port; aborts the test on failure. */
struct th_mosq *th_mosq_start(const char *dir);
int th_mosq_port(const struct th_mosq *m);
/* Stops it (SIGTERM: it saves its persistence file) and waits. */
void th_mosq_stop(struct th_mosq *m);
/* Starts it again on the same port with the same persistence. */
void th_mosq_restart(struct th_mosq *m);

#endif

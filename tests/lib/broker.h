/*
 * Starts, stops and restarts the Danube-compatible test broker
 * (tests/danube-broker/danube-broker) for integration tests, and runs its
 * admin commands. Built on the harness: processes and temp dirs are cleaned
 * up even when a test fails.
 *
 * With DC_DANUBE_BROKER=PATH (make check-danube) the same calls start the
 * real danube-broker at PATH instead, standalone on free ports, and the
 * admin commands go to its admin port. What only the test broker can do
 * (its options, restarting on the same data) then aborts the test: a test
 * that needs it says so first with th_broker_needs_test_broker().
 */
#ifndef DC_TEST_BROKER_H
#define DC_TEST_BROKER_H

#include <stdbool.h>

struct th_broker;

/*
 * Starts the broker on free ports in dir (th_tmpdir() when NULL), with
 * --data-dir dir/data so a restart keeps reliable topics, and the extra
 * arguments (NULL-terminated, may be NULL), e.g. "--token", "s3cret".
 * Waits until it prints its ports; aborts the test if it does not.
 */
struct th_broker *th_broker_start(const char *dir, const char *const *extra_args);

/* Whether DC_DANUBE_BROKER names a real broker to run against. */
bool th_broker_is_real(void);
/*
 * True (and a "SKIP" line on stderr naming the test's need) when running
 * against the real broker: the test returns at once. False otherwise.
 */
bool th_broker_needs_test_broker(const char *why);

/* "http://127.0.0.1:PORT" ("https://..." when started with --tls-cert). */
const char *th_broker_url(const struct th_broker *b);
/* "127.0.0.1:PORT" of the client and admin ports. */
const char *th_broker_addr(const struct th_broker *b);
const char *th_broker_admin_addr(const struct th_broker *b);
int th_broker_port(const struct th_broker *b);
const char *th_broker_dir(const struct th_broker *b);
/* Everything the broker wrote to stdout/stderr since it was last started (caller frees). */
char *th_broker_log(const struct th_broker *b);
bool th_broker_running(struct th_broker *b);

/*
 * Runs tests/danube-broker/danube-admin against the broker, e.g.
 * th_broker_admin(b, "create-topic", "/default/t", "--reliable", NULL).
 * Returns its exit code (0 success, 1 refused by the broker; -1 timeout).
 */
int th_broker_admin(struct th_broker *b, const char *cmd, ...) __attribute__((sentinel));

/* SIGTERM and wait; returns the wait status. */
int th_broker_stop(struct th_broker *b);
/* SIGKILL (nothing flushed at exit) and wait; returns the wait status. */
int th_broker_kill(struct th_broker *b);
/* Stops it if running, then starts it again on the same ports with the same data dir. */
void th_broker_restart(struct th_broker *b);
/* Stops it if running and frees b. */
void th_broker_free(struct th_broker *b);

#endif

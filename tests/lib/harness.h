/*
 * The integration-test harness: start programs in a temp dir, wait for a
 * condition with a deadline, collect their output, and kill and reap them
 * (and anything they left behind) even when the test fails.
 *
 * Every process and temp dir made here is registered; th_cleanup_all()
 * runs at exit (a failed ck_assert exits the forked test process), and the
 * process is a child subreaper, so orphaned grandchildren are found too.
 * Spawned children also get PR_SET_PDEATHSIG(SIGKILL).
 *
 * With DC_VALGRIND=1 in the environment (make check-valgrind), programs
 * under $DC_BUILD_DIR run under valgrind's leak checker and exit 99 on a
 * leak or memory error, so a test that checks exit statuses catches it.
 */
#ifndef DC_TEST_HARNESS_H
#define DC_TEST_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* From the environment make sets ($DC_BUILD_DIR, $DC_SRC_DIR, $DC_PYTHON). */
const char *th_build_dir(void);
const char *th_src_dir(void);
const char *th_python(void);
/* "$DC_BUILD_DIR/REL" in a static rotating buffer (8 slots). */
const char *th_build_path(const char *rel);
const char *th_src_path(const char *rel);

/* A fresh directory under $TMPDIR, removed (recursively) at cleanup. */
const char *th_tmpdir(void);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int th_free_port(void);

struct th_proc;

/*
 * Start argv[0] (a path) in cwd with the current environment plus env
 * ("K=V" strings, NULL-terminated, may be NULL), in its own process group,
 * stdin from /dev/null, stdout and stderr to cwd/<name>.log where name is
 * the basename of argv[0] plus a counter. Aborts the test on failure.
 */
struct th_proc *th_spawn(const char *cwd, char *const argv[], char *const env[]);
pid_t th_proc_pid(const struct th_proc *p);
const char *th_proc_log_path(const struct th_proc *p);
/* Everything the process wrote so far (malloc'd, caller frees). */
char *th_proc_output(const struct th_proc *p);
bool th_proc_output_contains(const struct th_proc *p, const char *needle);
/* Occurrences of needle in the output so far. */
int th_proc_output_count(const struct th_proc *p, const char *needle);
bool th_proc_running(struct th_proc *p);
/* Signal the process (not its group). */
int th_proc_kill(struct th_proc *p, int sig);
/*
 * Wait up to timeout_ms for the process to exit; returns true and its
 * wait status in *status (may be NULL) when it did.
 */
bool th_proc_wait(struct th_proc *p, int timeout_ms, int *status);
/*
 * Send sig to the process group, wait up to timeout_ms, then SIGKILL the
 * group; returns the wait status. A stopped group gets SIGCONT first; a
 * running one never does (it would break LeakSanitizer's exit-time check).
 */
int th_proc_stop(struct th_proc *p, int sig, int timeout_ms);

/* A wait status as the shell spells it: the exit code, or 128+N for signal N. */
int th_exit_code(int status);
/* No sanitizer report (make SANITIZE=1: ASan, LSan, UBSan) in the process's output. */
bool th_proc_clean(const struct th_proc *p);

/* Run a command to completion; its stdout+stderr into *out (may be NULL). Returns
 * the exit code, 128+N for a signal, -1 on timeout (the command is killed). */
int th_run(char *const argv[], char **out, int timeout_ms);
/* Same with a string on stdin. */
int th_run_input(char *const argv[], const char *input, char **out, int timeout_ms);

/* Polling with a deadline (every 10 ms, backing off to 100 ms). */
typedef bool (*th_cond_fn)(void *arg);
bool th_wait_for(th_cond_fn fn, void *arg, int timeout_ms);
#define TH_WAIT(expr, timeout_ms)                                                        \
	({                                                                               \
		bool th_ok_ = false;                                                     \
		for (th_deadline_t th_d_ = th_deadline(timeout_ms);; th_pause(&th_d_)) { \
			if ((expr)) {                                                    \
				th_ok_ = true;                                           \
				break;                                                   \
			}                                                                \
			if (th_expired(&th_d_))                                          \
				break;                                                   \
		}                                                                        \
		th_ok_;                                                                  \
	})

typedef struct {
	unsigned long long end_ms;
	unsigned sleep_ms;
} th_deadline_t;
th_deadline_t th_deadline(int timeout_ms);
bool th_expired(const th_deadline_t *d);
void th_pause(th_deadline_t *d);

/*
 * Waits while a count grows: true once count(arg) >= want, false when it did
 * not change for stall_ms. For long runs on a busy machine: the limit is on
 * progress, not on the total time.
 */
typedef long long (*th_count_fn)(void *arg);
bool th_wait_progress(th_count_fn count, void *arg, long long want, int stall_ms);

/* A test's size: n, or soak under DC_SOAK=1 (make soak). */
unsigned long th_scale(unsigned long n, unsigned long soak);

bool th_wait_port(int port, int timeout_ms);
bool th_wait_file_contains(const char *path, const char *needle, int timeout_ms);

/* Files. */
int th_write_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *th_read_file(const char *path); /* NULL if missing; caller frees */

/* Kill every registered process group and orphan, reap them, remove temp dirs. */
void th_cleanup_all(void);

/*
 * main() for a test program: runs the suite made by fn in fork mode and
 * returns non-zero when any test failed.
 */
int th_main(Suite *(*fn)(void));
#define TH_MAIN(fn)                 \
	int main(void)              \
	{                           \
		return th_main(fn); \
	}

#endif

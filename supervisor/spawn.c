/*
 * fork/exec of workers. nng is not fork-safe, so the child does only
 * async-signal-safe work between fork and exec: its own session, a clean
 * signal state, death signal, its fds, exec.
 */
#include "spawn.h"
#include "exit_codes.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

extern char **environ;

static void child_exec(const char *path, char *const argv[], char *const envp[], int in_fd,
		       int out_fd, int err_fd, pid_t parent)
{
	struct sigaction sa;
	sigset_t all;

	setsid();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	/* Never outlive the supervisor; it may have died before prctl ran. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(DC_EXIT_EXEC);
	if (dup2(in_fd, STDIN_FILENO) < 0)
		_exit(DC_EXIT_EXEC);
	if (out_fd >= 0 && (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(err_fd, STDERR_FILENO) < 0))
		_exit(DC_EXIT_EXEC);
	execve(path, argv, envp);
	_exit(DC_EXIT_EXEC);
}

int dc_spawn(const char *path, char *const argv[], char *const envp[], bool pipe_output,
	     struct dc_spawned *sp)
{
	int out[2] = {-1, -1}, err[2] = {-1, -1};
	int in_fd, rv;
	pid_t parent = getpid(), pid;

	in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in_fd < 0)
		return -errno;
	if (pipe_output && (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)) {
		rv = -errno;
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		rv = -errno;
		goto fail;
	}
	if (pid == 0)
		child_exec(path, argv, envp, in_fd, out[1], err[1], parent);
	close(in_fd);
	if (pipe_output) {
		close(out[1]);
		close(err[1]);
		(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
		(void)fcntl(err[0], F_SETFL, O_NONBLOCK);
	}
	sp->pid = pid;
	sp->out_fd = out[0];
	sp->err_fd = err[0];
	return 0;

fail:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	close(in_fd);
	return rv;
}

static bool env_dropped(const char *kv, const char *const drop[])
{
	for (size_t i = 0; drop != NULL && drop[i] != NULL; i++) {
		size_t n = strlen(drop[i]);

		if (strncmp(kv, drop[i], n) == 0 && kv[n] == '=')
			return true;
	}
	return false;
}

char **dc_env_build(const char *const drop[], char *const add[])
{
	size_t n = 0, nadd = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	while (add != NULL && add[nadd] != NULL)
		nadd++;
	env = calloc(n + nadd + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n + nadd; i++) {
		const char *kv = i < n ? environ[i] : add[i - n];

		if (i < n && env_dropped(kv, drop))
			continue;
		env[k] = strdup(kv);
		if (env[k] == NULL) {
			dc_env_free(env);
			return NULL;
		}
		k++;
	}
	return env;
}

void dc_env_free(char **env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

char *dc_env_pair(const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);
	char *s = malloc(n + v + 2);

	if (s == NULL)
		return NULL;
	memcpy(s, name, n);
	s[n] = '=';
	memcpy(s + n + 1, value, v + 1);
	return s;
}

/* fork/exec of a worker in its own session, its stdout and stderr on pipes. */
#ifndef DC_SPAWN_H
#define DC_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

struct dc_spawned {
	pid_t pid;
	int out_fd; /* read ends, non-blocking, close-on-exec; -1 when not piped */
	int err_fd;
};

/*
 * Start path with argv and envp. With pipe_output the child's stdout and
 * stderr go to two pipes handed back in *sp; otherwise it inherits ours.
 * stdin is /dev/null. Returns 0 or -errno.
 */
int dc_spawn(const char *path, char *const argv[], char *const envp[], bool pipe_output,
	     struct dc_spawned *sp);

/*
 * A copy of environ without the variables named in drop (NULL-terminated)
 * and with the "K=V" strings of add appended. Free with dc_env_free.
 */
char **dc_env_build(const char *const drop[], char *const add[]);
/* "NAME=VALUE", malloc'd; NULL when out of memory. */
char *dc_env_pair(const char *name, const char *value);
void dc_env_free(char **env);

#endif

/* danube-connectctl: one entry point per subcommand, dispatched by main.c. */
#ifndef DC_CTL_H
#define DC_CTL_H

/*
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit status: 0 success, 64 usage,
 * 69 daemon/broker unavailable, 1 any other failure, with a one-line
 * reason on stderr.
 */

/* status.c, control.c (the supervisor's control socket) */
int ctl_status(int argc, char **argv, const char *socket_url);
int ctl_start(int argc, char **argv, const char *socket_url);
int ctl_stop(int argc, char **argv, const char *socket_url);
int ctl_restart(int argc, char **argv, const char *socket_url);
int ctl_reload(int argc, char **argv, const char *socket_url);
int ctl_metrics(int argc, char **argv, const char *socket_url);

/* produce.c, consume.c (straight to the Danube broker) */
int ctl_produce(int argc, char **argv);
int ctl_consume(int argc, char **argv);

#endif

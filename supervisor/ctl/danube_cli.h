/* What `produce` and `consume` share: broker defaults from the global file, exit codes. */
#ifndef DC_CTL_DANUBE_CLI_H
#define DC_CTL_DANUBE_CLI_H

struct dn_client_opts;

/*
 * Fill the unset fields of o (service_url, token, tls_ca) from the global
 * file's [danube] section (conf_path, or the default one if it exists) and
 * the environment; the URL defaults to http://127.0.0.1:6650. The strings
 * live until ctl_danube_defaults_free. Returns 0, or 1 after printing why.
 */
int ctl_danube_defaults(struct dn_client_opts *o, const char *conf_path);
void ctl_danube_defaults_free(void);

/* The exit status for a failure with this gRPC code: 69 unavailable, else 1. */
int ctl_danube_exit_code(int code);

#endif

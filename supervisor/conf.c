/*
 * Loading danube-connectd's configuration: [supervisor] from the global file
 * and, from every *.ini in connectors_dir, the [connector], [danube] and
 * [runtime] values in effect (the worker checks its own sections itself).
 */
#include "conf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "config_keys.h"
#include "http.h"
#include "log.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= ((const unsigned char *)p)[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t file_digest(const char *path)
{
	uint64_t h = FNV_OFFSET;
	FILE *f = fopen(path, "re");
	char buf[4096];
	size_t n;

	if (f == NULL)
		return 0;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		h = fnv1a(h, buf, n);
	fclose(f);
	return h;
}

/*
 * The configuration a key's effective value comes from: the connector file
 * (or the environment over it), else the global file's default for every
 * connector. [connector] is the connector file's alone.
 */
static const struct dc_config *effective(const struct dc_config *conn,
					 const struct dc_config *global, const char *section,
					 const char *key)
{
	const char *where = dc_config_where(conn, section, key);

	if (global == NULL || strcmp(section, "connector") == 0)
		return conn;
	return strcmp(where, "default") == 0 || strcmp(where, "unset") == 0 ? global : conn;
}

/* The file's bytes and the effective values of the shared sections it inherits. */
static uint64_t effective_digest(uint64_t h, const struct dc_config *conn,
				 const struct dc_config *global, const struct dc_cfg_key *keys,
				 size_t nkeys)
{
	for (size_t i = 0; i < nkeys; i++) {
		const char *v = dc_config_str(effective(conn, global, keys[i].section, keys[i].key),
					      keys[i].section, keys[i].key);

		h = fnv1a(h, keys[i].section, strlen(keys[i].section) + 1);
		h = fnv1a(h, keys[i].key, strlen(keys[i].key) + 1);
		/* Unset and empty differ: a marker byte that no text value starts with. */
		h = v != NULL ? fnv1a(h, v, strlen(v) + 1) : fnv1a(h, "\xff", 1);
	}
	return h;
}

/* Relative paths in the global file are relative to the file's directory. */
static char *resolve(const char *global_file, const char *p)
{
	const char *slash;
	char *out;

	if (p[0] == '/' || p[0] == '\0' || (slash = strrchr(global_file, '/')) == NULL)
		return strdup(p);
	if (asprintf(&out, "%.*s/%s", (int)(slash - global_file), global_file, p) < 0)
		return NULL;
	return out;
}

/* A name goes into socket paths, syslog idents and metric labels. */
static bool name_ok(const char *s)
{
	if (s[0] == '\0' || s[0] == '.' || s[0] == '-')
		return false;
	for (const char *p = s; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return false;
	}
	return true;
}

static int load_connector(struct dc_conn_spec *s, const struct dc_supd_conf *c,
			  const struct dc_config *global, const char *fname, struct dc_diag *diag)
{
	const char *dir = c->connectors_dir;
	struct sockaddr_un un;
	struct dc_config_src src = {0};
	struct dc_config *cfg = NULL;
	struct dc_cfg_key *keys = NULL;
	size_t nkeys = 0;
	const char *type;
	char sn[DC_SHOWN_NAME], sp[DC_SHOWN_PATH];
	int rv;

	memset(s, 0, sizeof(*s));
	s->name = strndup(fname, strlen(fname) - 4);
	if (asprintf(&s->path, "%s/%s", dir, fname) < 0)
		s->path = NULL;
	if (s->name == NULL || s->path == NULL)
		return -1;
	s->digest = file_digest(s->path);
	if (!name_ok(s->name)) {
		dc_diag_add(diag,
			    "%s: connector name '%s' may only use letters, digits, '_', "
			    "'-' and '.'",
			    s->path, dc_log_shown(s->name, sn, sizeof(sn)));
		return 0;
	}
	if (strlen(c->run_dir) + strlen(s->name) + 7 > sizeof(un.sun_path)) {
		dc_diag_add(diag, "%s: name too long for an IPC socket in %s", s->path,
			    dc_log_shown(c->run_dir, sp, sizeof(sp)));
		return 0;
	}
	/*
	 * As a "global" file only the shared sections are read (the worker checks
	 * its own), with the environment over them as the worker sees it.
	 */
	if (dc_cfg_keys_concat(&keys, &nkeys, DC_CFG_KEYS_CONNECTOR, DC_CFG_KEYS_DANUBE,
			       DC_CFG_KEYS_RUNTIME, NULL) < 0)
		return -1;
	src.global_file = s->path;
	rv = dc_config_load(&cfg, keys, nkeys, &src, diag);
	if (rv < 0) {
		free(keys);
		return 0;
	}
	s->digest = effective_digest(s->digest, cfg, global, keys, nkeys);
	free(keys);
	s->stop_timeout_ms = (uint64_t)dc_config_int(
		effective(cfg, global, "runtime", "stop_timeout_ms"), "runtime", "stop_timeout_ms");
	type = dc_config_str(cfg, "connector", "type");
	if (type == NULL || !name_ok(type)) {
		dc_diag_add(diag, "%s: connector.type: '%s' is not a worker program name",
			    dc_config_where(cfg, "connector", "type"),
			    dc_log_shown(type ? type : "", sn, sizeof(sn)));
		dc_config_free(cfg);
		return 0;
	}
	s->type = strdup(type);
	s->type_where = strdup(dc_config_where(cfg, "connector", "type"));
	s->enabled = dc_config_bool(cfg, "connector", "enabled");
	dc_config_free(cfg);
	if (s->type == NULL || s->type_where == NULL)
		return -1;
	s->valid = true;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct dc_conn_spec *)a)->name,
		      ((const struct dc_conn_spec *)b)->name);
}

static int load_connectors(struct dc_supd_conf *c, const struct dc_config *global,
			   struct dc_diag *diag)
{
	DIR *d = opendir(c->connectors_dir);
	struct dirent *e;
	size_t cap = 0;
	char sp[DC_SHOWN_PATH];

	if (d == NULL) {
		dc_diag_add(diag, "%s: connectors_dir %s: cannot open: %s", c->global_file,
			    dc_log_shown(c->connectors_dir, sp, sizeof(sp)), strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".ini") != 0)
			continue;
		if (c->nconns == cap) {
			struct dc_conn_spec *t =
				realloc(c->conns, (cap ? cap * 2 : 8) * sizeof(*t));

			if (t == NULL)
				goto oom;
			c->conns = t;
			cap = cap ? cap * 2 : 8;
		}
		if (load_connector(&c->conns[c->nconns++], c, global, e->d_name, diag) < 0)
			goto oom;
	}
	closedir(d);
	if (c->nconns > 0)
		qsort(c->conns, c->nconns, sizeof(*c->conns), by_name);
	return 0;
oom:
	closedir(d);
	dc_diag_add(diag, "%s: out of memory", dc_log_shown(c->connectors_dir, sp, sizeof(sp)));
	return -1;
}

/* What mkdir(2) of run_dir at the start would meet, short of permissions (who runs --check?). */
static int probe_run_dir(const char *dir, char *err, size_t errsz)
{
	struct stat st;
	char *parent;
	size_t n = strlen(dir);
	int rv = 0;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errsz, "not a directory");
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(err, errsz, "%s", strerror(errno));
		return -1;
	}
	/* The start makes run_dir itself, not its parents. */
	while (n > 1 && dir[n - 1] == '/')
		n--;
	while (n > 0 && dir[n - 1] != '/')
		n--;
	while (n > 1 && dir[n - 1] == '/')
		n--;
	parent = n == 0 ? strdup(".") : strndup(dir, n);
	if (parent == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errsz, "cannot be made: its parent is not a directory");
		rv = -1;
	}
	free(parent);
	return rv;
}

/* run_dir and metrics_listen: the values only the start uses. True when they will do. */
static bool check_startup_settings(const struct dc_supd_conf *c, const struct dc_config *cfg,
				   bool probe, struct dc_diag *diag)
{
	static const char control[] = "/control.sock";
	struct sockaddr_un un;
	char err[320], host[256], port[8], shown[DC_SHOWN_VALUE], too_long[80];
	bool ok = true;

	snprintf(too_long, sizeof(too_long),
		 "too long for the sockets in it: at most %zu characters",
		 sizeof(un.sun_path) - sizeof(control));
	dc_log_shown(c->run_dir, shown, sizeof(shown));
	if (c->run_dir[0] == '\0' || strlen(c->run_dir) + sizeof(control) > sizeof(un.sun_path)) {
		dc_diag_add(diag, "%s: supervisor.run_dir: %s (got \"%s\")",
			    dc_config_where(cfg, "supervisor", "run_dir"),
			    c->run_dir[0] == '\0' ? "must not be empty" : too_long, shown);
		ok = false;
	} else if (probe && probe_run_dir(c->run_dir, err, sizeof(err)) < 0) {
		dc_diag_add(diag, "%s: supervisor.run_dir: %s (got \"%s\")",
			    dc_config_where(cfg, "supervisor", "run_dir"), err, shown);
		ok = false;
	}
	if (c->metrics_listen[0] != '\0' &&
	    (dc_http_listen_parse(c->metrics_listen, host, sizeof(host), port, sizeof(port), err,
				  sizeof(err)) < 0 ||
	     (probe && dc_http_listen_check(c->metrics_listen, err, sizeof(err)) < 0))) {
		dc_diag_add(diag, "%s: supervisor.metrics_listen: %s (got \"%s\")",
			    dc_config_where(cfg, "supervisor", "metrics_listen"), err,
			    dc_log_shown(c->metrics_listen, shown, sizeof(shown)));
		ok = false;
	}
	return ok;
}

int dc_supd_conf_load(struct dc_supd_conf *out, const char *global_file, bool probe,
		      struct dc_diag *diag)
{
	struct dc_config_src src = {.file = global_file};
	struct dc_config *cfg = NULL;
	struct dc_supd_conf c;
	enum dc_log_level level = DC_LOG_INFO;
	struct dc_cfg_key *keys = NULL;
	size_t nkeys = 0;
	int rv;

	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	/* The global file may also hold defaults for every connector's [danube] and [runtime]. */
	if (dc_cfg_keys_concat(&keys, &nkeys, DC_CFG_KEYS_SUPERVISOR, DC_CFG_KEYS_DANUBE,
			       DC_CFG_KEYS_RUNTIME, NULL) < 0) {
		dc_diag_add(diag, "%s: out of memory", global_file);
		return -1;
	}
	rv = dc_config_load(&cfg, keys, nkeys, &src, diag);
	free(keys);
	if (rv < 0)
		return -1;
	c.global_file = strdup(global_file);
	c.connectors_dir = resolve(global_file, dc_config_str(cfg, "supervisor", "connectors_dir"));
	c.run_dir = resolve(global_file, dc_config_str(cfg, "supervisor", "run_dir"));
	c.worker_dir = resolve(global_file, dc_config_str(cfg, "supervisor", "worker_dir"));
	c.metrics_listen = strdup(dc_config_str(cfg, "supervisor", "metrics_listen") ?: "");
	(void)dc_log_level_parse(dc_config_str(cfg, "supervisor", "log_level"), &level);
	c.log_level = (int)level;
	(void)dc_log_facility_parse(dc_config_str(cfg, "supervisor", "syslog_facility"),
				    &c.facility);
	c.backoff_initial_ms =
		(uint64_t)dc_config_int(cfg, "supervisor", "restart_backoff_initial_ms");
	c.backoff_max_ms = (uint64_t)dc_config_int(cfg, "supervisor", "restart_backoff_max_ms");
	c.restart_intensity = (unsigned)dc_config_int(cfg, "supervisor", "restart_intensity");
	c.restart_period_ms = (uint64_t)dc_config_int(cfg, "supervisor", "restart_period_s") * 1000;
	c.health_interval_ms = (uint64_t)dc_config_int(cfg, "supervisor", "health_interval_ms");
	c.health_timeout_ms = (uint64_t)dc_config_int(cfg, "supervisor", "health_timeout_ms");
	c.stop_timeout_ms = (uint64_t)dc_config_int(cfg, "supervisor", "stop_timeout_ms");
	if (c.backoff_max_ms < c.backoff_initial_ms)
		dc_diag_add(diag,
			    "%s: supervisor.restart_backoff_max_ms must not be below "
			    "restart_backoff_initial_ms",
			    dc_config_where(cfg, "supervisor", "restart_backoff_max_ms"));
	/* Otherwise every worker would look hung between two health rounds. */
	if (c.health_timeout_ms <= c.health_interval_ms)
		dc_diag_add(diag,
			    "%s: supervisor.health_timeout_ms must be above health_interval_ms",
			    dc_config_where(cfg, "supervisor", "health_timeout_ms"));
	if (c.global_file == NULL || c.connectors_dir == NULL || c.run_dir == NULL ||
	    c.worker_dir == NULL || c.metrics_listen == NULL) {
		dc_diag_add(diag, "%s: out of memory", global_file);
		dc_config_free(cfg);
		dc_supd_conf_free(&c);
		return -1;
	}
	if (!check_startup_settings(&c, cfg, probe, diag) ||
	    c.backoff_max_ms < c.backoff_initial_ms ||
	    c.health_timeout_ms <= c.health_interval_ms) {
		dc_config_free(cfg);
		dc_supd_conf_free(&c);
		return -1;
	}
	rv = load_connectors(&c, cfg, diag);
	dc_config_free(cfg);
	if (rv < 0) {
		dc_supd_conf_free(&c);
		return -1;
	}
	*out = c;
	return 0;
}

void dc_supd_conf_free(struct dc_supd_conf *c)
{
	for (size_t i = 0; i < c->nconns; i++) {
		free(c->conns[i].name);
		free(c->conns[i].path);
		free(c->conns[i].type);
		free(c->conns[i].type_where);
	}
	free(c->conns);
	free(c->global_file);
	free(c->connectors_dir);
	free(c->run_dir);
	free(c->worker_dir);
	free(c->metrics_listen);
	memset(c, 0, sizeof(*c));
}

const struct dc_conn_spec *dc_supd_conf_find(const struct dc_supd_conf *c, const char *name)
{
	for (size_t i = 0; i < c->nconns; i++) {
		if (strcmp(c->conns[i].name, name) == 0)
			return &c->conns[i];
	}
	return NULL;
}

/*
 * The worker table of danube-connectd: creating workers from the
 * configuration, applying a reload as a difference, shutting down, and
 * publishing the metrics snapshot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "supd.h"
#include "syslog_fwd.h"

struct dc_worker *dc_supd_find(struct dc_supd *sup, const char *name)
{
	for (size_t i = 0; i < sup->nworkers; i++) {
		if (strcmp(sup->workers[i]->spec.name, name) == 0)
			return sup->workers[i];
	}
	return NULL;
}

static int insert_worker(struct dc_supd *sup, struct dc_worker *w)
{
	struct dc_worker **t = realloc(sup->workers, (sup->nworkers + 1) * sizeof(*t));
	size_t at = 0;

	if (t == NULL)
		return -1;
	sup->workers = t;
	while (at < sup->nworkers && strcmp(t[at]->spec.name, w->spec.name) < 0)
		at++;
	memmove(t + at + 1, t + at, (sup->nworkers - at) * sizeof(*t));
	t[at] = w;
	sup->nworkers++;
	return 0;
}

/* A connector whose file has problems is shown as failed, never started. */
static void mark_invalid(struct dc_worker *w)
{
	w->fsm.state = DC_W_FAILED;
	w->fsm.want_up = false;
	free(w->last_error);
	w->last_error = strdup("configuration errors: see the log or danube-connectd --check");
}

static int add_worker(struct dc_supd *sup, const struct dc_conn_spec *spec)
{
	struct dc_worker *w = dc_worker_new(sup, spec);

	if (w == NULL || insert_worker(sup, w) < 0) {
		dc_log_error("%s: out of memory", spec->name);
		dc_worker_free(w);
		return -1;
	}
	w->file_broken = !spec->valid;
	if (!spec->valid)
		mark_invalid(w);
	else if (spec->enabled)
		dc_worker_event(w, DC_EV_START);
	else
		dc_log_info("%s: disabled", spec->name);
	return 0;
}

int dc_supd_start_all(struct dc_supd *sup)
{
	for (size_t i = 0; i < sup->conf.nconns; i++) {
		if (add_worker(sup, &sup->conf.conns[i]) < 0)
			return -1;
	}
	return 0;
}

void dc_supd_request_sweep(struct dc_supd *sup)
{
	if (!ev_is_active(&sup->sweep))
		ev_idle_start(sup->loop, &sup->sweep);
}

void dc_supd_sweep(struct dc_supd *sup)
{
	bool alive = false;
	size_t k = 0;

	for (size_t i = 0; i < sup->nworkers; i++) {
		struct dc_worker *w = sup->workers[i];

		if (w->removed && w->pid == 0 && !dc_wstate_has_process(w->fsm.state)) {
			dc_log_info("%s: removed", w->spec.name);
			dc_worker_free(w);
			continue;
		}
		if (w->pid != 0)
			alive = true;
		sup->workers[k++] = w;
	}
	sup->nworkers = k;
	if (sup->shutting_down && !alive)
		ev_break(sup->loop, EVBREAK_ALL);
}

void dc_supd_shutdown(struct dc_supd *sup)
{
	if (sup->shutting_down)
		return;
	sup->shutting_down = true;
	dc_log_info("stopping %zu connectors", sup->nworkers);
	for (size_t i = 0; i < sup->nworkers; i++)
		dc_worker_event(sup->workers[i], DC_EV_STOP);
	dc_supd_request_sweep(sup);
}

static void log_diag(const struct dc_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		dc_log_error("%s", d->lines[i]);
}

static void apply_spec(struct dc_supd *sup, struct dc_worker *w, const struct dc_conn_spec *spec)
{
	bool changed = spec->digest != w->spec.digest;

	w->file_broken = !spec->valid;
	if (!spec->valid) {
		dc_log_error("%s: %s has problems: the worker is left as it is", spec->name,
			     spec->path);
		return;
	}
	if (changed && dc_worker_set_spec(w, spec) < 0) {
		dc_log_error("%s: out of memory", spec->name);
		return;
	}
	if (!spec->enabled) {
		if (w->fsm.state != DC_W_STOPPED)
			dc_log_info("%s: disabled", spec->name);
		dc_worker_event(w, DC_EV_STOP);
	} else if (w->held) {
		/* `stop NAME` holds until `start NAME`, whatever the reload brings. */
		if (changed)
			dc_log_info("%s: %s changed: stays stopped until started", spec->name,
				    spec->path);
	} else if (changed) {
		dc_log_info("%s: %s changed: restarting", spec->name, spec->path);
		dc_worker_event(w, DC_EV_RESTART);
	} else if (w->fsm.state == DC_W_FAILED || !w->fsm.want_up) {
		/* A reload is the operator's way to say "try again". */
		dc_worker_event(w, DC_EV_START);
	}
}

/* run_dir and metrics_listen belong to sockets made at start-up. */
static void keep_startup_settings(struct dc_supd_conf *nc, struct dc_supd_conf *old)
{
	char *t;

	if (strcmp(nc->run_dir, old->run_dir) != 0)
		dc_log_warn("run_dir changed: takes effect when danube-connectd restarts");
	if (strcmp(nc->metrics_listen, old->metrics_listen) != 0)
		dc_log_warn("metrics_listen changed: takes effect when danube-connectd restarts");
	t = nc->run_dir;
	nc->run_dir = old->run_dir;
	old->run_dir = t;
	t = nc->metrics_listen;
	nc->metrics_listen = old->metrics_listen;
	old->metrics_listen = t;
}

int dc_supd_reload(struct dc_supd *sup, char *err, size_t errlen)
{
	struct dc_supd_conf nc;
	struct dc_diag diag;
	int old_facility;

	if (sup->shutting_down) {
		snprintf(err, errlen, "danube-connectd is shutting down");
		dc_log_error("reload rejected: %s", err);
		return -1;
	}
	dc_log_info("reloading %s", sup->conf.global_file);
	dc_diag_init(&diag);
	if (dc_supd_conf_load(&nc, sup->conf.global_file, false, &diag) < 0) {
		log_diag(&diag);
		snprintf(err, errlen, "configuration rejected, nothing changed: %s%s",
			 diag.n > 0 ? diag.lines[0] : "cannot load",
			 diag.n > 1 ? " (and more, see the log)" : "");
		dc_log_error("reload rejected: the running configuration is unchanged");
		dc_diag_free(&diag);
		return -1;
	}
	log_diag(&diag);
	dc_diag_free(&diag);
	keep_startup_settings(&nc, &sup->conf);
	old_facility = sup->conf.facility;
	dc_supd_conf_free(&sup->conf);
	sup->conf = nc;
	dc_log_set_level((enum dc_log_level)nc.log_level);
	if (nc.facility != old_facility) {
		dc_log_open("danube-connectd", nc.facility, true, sup->foreground);
		dc_syslog_fwd_set_facility(sup->fwd, nc.facility);
	}

	for (size_t i = 0; i < sup->nworkers; i++) {
		struct dc_worker *w = sup->workers[i];

		w->backoff.initial_ms = nc.backoff_initial_ms;
		w->backoff.max_ms = nc.backoff_max_ms;
		if (!w->removed && dc_supd_conf_find(&nc, w->spec.name) == NULL) {
			dc_log_info("%s: %s is gone: stopping", w->spec.name, w->spec.path);
			w->removed = true;
			dc_worker_event(w, DC_EV_STOP);
		}
	}
	for (size_t i = 0; i < nc.nconns; i++) {
		const struct dc_conn_spec *spec = &nc.conns[i];
		struct dc_worker *w = dc_supd_find(sup, spec->name);

		if (w == NULL) {
			dc_log_info("%s: new connector %s", spec->name, spec->path);
			(void)add_worker(sup, spec);
		} else if (w->removed) {
			/* Came back before its old process was gone: start it again. */
			w->removed = false;
			w->held = false;
			w->file_broken = !spec->valid;
			(void)dc_worker_set_spec(w, spec);
			if (spec->valid && spec->enabled)
				dc_worker_event(w, DC_EV_RESTART);
		} else {
			apply_spec(sup, w, spec);
		}
	}
	return 0;
}

void dc_supd_publish(struct dc_supd *sup)
{
	char *metrics, *not_ready = NULL;
	size_t len = 0, nlen = 0;
	FILE *f;

	if (sup->http == NULL)
		return;
	metrics = dc_metrics_render(sup, &len);
	f = open_memstream(&not_ready, &nlen);
	if (f != NULL) {
		for (size_t i = 0; i < sup->nworkers; i++) {
			const struct dc_worker *w = sup->workers[i];

			if (!w->removed &&
			    (w->file_broken || (w->spec.enabled && !dc_worker_ready(w))))
				fprintf(f, "%s%s", nlen > 0 ? " " : "", w->spec.name);
			fflush(f);
		}
		if (fclose(f) != 0) {
			free(not_ready);
			not_ready = NULL;
		} else if (nlen == 0) {
			free(not_ready);
			not_ready = NULL;
		}
	}
	dc_http_publish(sup->http, metrics, len, not_ready);
}

/*
 * /metrics, /healthz and /readyz: a small HTTP/1.1 server on the daemon's
 * loop. nng 1.5.2's HTTP server, used before, has no request timeout and no
 * connection limit, and drops an oversized request without a status line;
 * this one answers GET and HEAD of three paths, one request per connection,
 * within the limits in http.h, and nothing else.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LINGER_MS       2000  /* after the answer, for what the client still sends */
#define LINGER_BYTES    65536 /* ... and at most this much of it */
#define ACCEPT_PAUSE_MS 100   /* accept failed (out of fds): try again after this */
#define BACKLOG         128

enum phase { READING, WRITING, LINGERING };

struct conn {
	struct dc_http *h;
	struct conn *prev, *next;
	int fd;
	enum phase phase;
	bool linger; /* after the answer: read until the client is done, then close */
	ev_io io;
	ev_timer timer;
	size_t len;     /* bytes in in[] */
	size_t reqline; /* end of the request line in in[] (after its \n), 0 before */
	size_t scan;    /* start of the header line not yet complete */
	size_t drained; /* bytes read while lingering */
	char *out;
	size_t outlen, outoff;
	char in[DC_HTTP_MAX_REQUEST];
};

struct dc_http {
	struct ev_loop *loop;
	int fd;
	ev_io accept_io;
	ev_timer pause;
	bool accept_failing; /* logged once until an accept succeeds */
	struct conn *conns;
	size_t nconns;
	char *metrics;
	size_t metrics_len;
	char *not_ready;
	bool published;
};

/* ------------------------------------------------------------ the address */

int dc_http_listen_parse(const char *addr, char *host, size_t hostsz, char *port, size_t portsz,
			 char *err, size_t errsz)
{
	const char *h = addr, *hend, *colon, *q;
	long p = 0;

	if (addr[0] == '[') {
		h = addr + 1;
		hend = strchr(h, ']');
		if (hend == NULL || hend == h || hend[1] != ':')
			goto syntax;
		colon = hend + 1;
		for (q = h; q < hend; q++)
			if (!isalnum((unsigned char)*q) && !strchr(":.%", *q))
				goto syntax;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			goto syntax;
		hend = colon;
		for (q = h; q < hend; q++)
			if (!isalnum((unsigned char)*q) && !strchr("-._", *q))
				goto syntax;
	}
	if ((size_t)(hend - h) >= hostsz) {
		snprintf(err, errsz, "host name too long");
		return -1;
	}
	for (q = colon + 1; *q != '\0'; q++) {
		if (!isdigit((unsigned char)*q) || q - colon > 5)
			goto syntax;
		p = p * 10 + (*q - '0');
	}
	if (q == colon + 1)
		goto syntax;
	if (p < 1 || p > 65535) {
		snprintf(err, errsz, "port must be between 1 and 65535");
		return -1;
	}
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	snprintf(port, portsz, "%ld", p);
	return 0;
syntax:
	snprintf(err, errsz, "expected HOST:PORT, [IPV6]:PORT or :PORT, such as 127.0.0.1:9090");
	return -1;
}

static int resolve(const char *addr, struct addrinfo **res, char *err, size_t errsz)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	char host[256], port[8];
	int rv;

	if (dc_http_listen_parse(addr, host, sizeof(host), port, sizeof(port), err, errsz) < 0)
		return -1;
	rv = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, res);
	if (rv != 0) {
		snprintf(err, errsz, "cannot resolve %s: %s", host,
			 rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
		return -1;
	}
	return 0;
}

/* A non-blocking socket bound to ai, or -errno. */
static int bind_to(const struct addrinfo *ai)
{
	int one = 1, e;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int dc_http_listen_check(const char *addr, char *err, size_t errsz)
{
	struct addrinfo *res;
	int fd;

	if (resolve(addr, &res, err, errsz) < 0)
		return -1;
	/* The address the start binds, on a port of the kernel's choosing: the real one may be in
	 * use. */
	if (res->ai_family == AF_INET)
		((struct sockaddr_in *)res->ai_addr)->sin_port = 0;
	else if (res->ai_family == AF_INET6)
		((struct sockaddr_in6 *)res->ai_addr)->sin6_port = 0;
	fd = bind_to(res);
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errsz, "cannot listen there: %s", strerror(-fd));
		return -1;
	}
	close(fd);
	return 0;
}

/* ------------------------------------------------------------ connections */

static void conn_close(struct conn *c)
{
	struct dc_http *h = c->h;

	ev_io_stop(h->loop, &c->io);
	ev_timer_stop(h->loop, &c->timer);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c->out);
	free(c);
	h->nconns--;
	if (!ev_is_active(&h->accept_io) && !ev_is_active(&h->pause))
		ev_io_start(h->loop, &h->accept_io);
}

/* Wait for events on the connection, for at most ms. */
static void conn_wait(struct conn *c, int events, int ms)
{
	struct ev_loop *loop = c->h->loop;

	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(loop, &c->io);
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, ms / 1000.0, 0.0);
	ev_timer_start(loop, &c->timer);
}

/* Sends what is left of the answer; then lingers or closes. */
static void conn_send(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->outoff += (size_t)n;
	}
	/*
	 * Closing with unread input would reset the connection, and the client
	 * could lose the answer: half-close, then read until it is done.
	 */
	if (!c->linger || shutdown(c->fd, SHUT_WR) < 0) {
		conn_close(c);
		return;
	}
	c->phase = LINGERING;
	conn_wait(c, EV_READ, LINGER_MS);
}

static void conn_drain(struct conn *c)
{
	char buf[4096];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || (c->drained += (size_t)n) > LINGER_BYTES) {
			conn_close(c);
			return;
		}
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Internal Server Error";
}

/* Queues the answer (the body is copied) and starts sending it. */
static void answer(struct conn *c, int status, const char *ctype, const char *body, size_t len,
		   bool head)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	size_t n;
	char *out;
	int hn;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	hn = asprintf(&out,
		      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		      "%sConnection: close\r\n\r\n",
		      status, reason(status), date, ctype, len,
		      status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (hn < 0) {
		dc_log_warn("metrics_listen: out of memory for an answer");
		conn_close(c);
		return;
	}
	n = (size_t)hn;
	if (!head && len > 0) {
		char *t = realloc(out, n + len);

		if (t == NULL) {
			free(out);
			dc_log_warn("metrics_listen: out of memory for an answer");
			conn_close(c);
			return;
		}
		out = t;
		memcpy(out + n, body, len);
		n += len;
	}
	c->out = out;
	c->outlen = n;
	c->outoff = 0;
	c->phase = WRITING;
	conn_wait(c, EV_WRITE, DC_HTTP_SEND_MS);
	conn_send(c);
}

static void answer_error(struct conn *c, int status)
{
	char body[64];

	dc_log_debug("metrics_listen: answered %d %s", status, reason(status));
	snprintf(body, sizeof(body), "%s\n", reason(status));
	answer(c, status, "text/plain; charset=utf-8", body, strlen(body), false);
}

static bool is_tchar(char ch)
{
	return isalnum((unsigned char)ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_token(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_tchar(s[i]))
			return false;
	return n > 0;
}

/* The length of the line at s (its \n at or before end), without CR LF. */
static size_t line_len(const char *s, const char *end)
{
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	size_t n = (size_t)(nl - s);

	return n > 0 && s[n - 1] == '\r' ? n - 1 : n;
}

/* Status for the header lines from p to end (the empty line excluded); hosts counted. */
static int check_headers(const char *p, const char *end, int *hosts)
{
	while (p < end) {
		size_t n = line_len(p, end);
		const char *colon = memchr(p, ':', n);

		/* Folded lines are obsolete; a blank before the colon is forbidden. */
		if (*p == ' ' || *p == '\t' || colon == NULL || !is_token(p, (size_t)(colon - p)))
			return 400;
		if (colon - p == 4 && strncasecmp(p, "host", 4) == 0)
			(*hosts)++;
		p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
	}
	return 0;
}

/* The path of a request target, up to its query: origin-form or absolute-form. */
static bool target_path(const char *t, size_t n, const char **path, size_t *plen)
{
	const char *p = t, *end = t + n;

	if (n > 7 && strncasecmp(t, "http://", 7) == 0)
		p = memchr(t + 7, '/', n - 7);
	else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
		p = memchr(t + 8, '/', n - 8);
	else if (t[0] != '/')
		return false;
	if (p == NULL) {
		*path = "/";
		*plen = 1;
		return true;
	}
	*path = p;
	while (p < end && *p != '?' && *p != '#')
		p++;
	*plen = (size_t)(p - *path);
	return true;
}

static bool path_is(const char *path, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(path, want, n) == 0;
}

/*
 * Checks the request in[0..hlen), which ends with an empty line: 0 with its
 * path and whether it is HEAD, or the status of the answer that refuses it.
 */
static int check_request(const struct conn *c, size_t hlen, const char **path, size_t *plen,
			 bool *head)
{
	const char *b = c->in, *sp1, *sp2, *v;
	size_t n = line_len(b, b + c->reqline);
	int hosts = 0, status;
	bool http11;

	if (memchr(b, '\0', hlen) != NULL)
		return 400;
	/* METHOD SP TARGET SP HTTP/D.D */
	sp1 = memchr(b, ' ', n);
	sp2 = memrchr(b, ' ', n);
	if (sp1 == NULL || sp2 == sp1 || sp2 == sp1 + 1 || !is_token(b, (size_t)(sp1 - b)) ||
	    memchr(sp1 + 1, ' ', (size_t)(sp2 - sp1 - 1)) != NULL)
		return 400;
	v = sp2 + 1;
	if (b + n - v != 8 || strncmp(v, "HTTP/", 5) != 0 || !isdigit((unsigned char)v[5]) ||
	    v[6] != '.' || !isdigit((unsigned char)v[7]))
		return 400;
	if (v[5] != '1')
		return 505;
	http11 = v[7] != '0';
	status = check_headers(b + c->reqline, b + c->scan, &hosts);
	if (status != 0)
		return status;
	if (hosts > 1 || (http11 && hosts == 0))
		return 400;
	if (!target_path(sp1 + 1, (size_t)(sp2 - sp1 - 1), path, plen))
		return 400;
	if (!path_is(*path, *plen, "/metrics") && !path_is(*path, *plen, "/healthz") &&
	    !path_is(*path, *plen, "/readyz"))
		return 404;
	*head = sp1 - b == 4 && memcmp(b, "HEAD", 4) == 0;
	if (!*head && !(sp1 - b == 3 && memcmp(b, "GET", 3) == 0))
		return 405;
	return 0;
}

/* The request is whole: in[0..hlen) ends with an empty line. Answers it. */
static void serve(struct conn *c, size_t hlen)
{
	struct dc_http *h = c->h;
	const char *path;
	size_t plen;
	bool head = false;
	int status = check_request(c, hlen, &path, &plen, &head);
	char *body;
	int len;

	if (status != 0) {
		answer_error(c, status);
	} else if (path_is(path, plen, "/metrics")) {
		answer(c, 200, "text/plain; version=0.0.4; charset=utf-8",
		       h->metrics != NULL ? h->metrics : "", h->metrics_len, head);
	} else if (path_is(path, plen, "/healthz")) {
		answer(c, 200, "text/plain; charset=utf-8", "ok\n", 3, head);
	} else if (h->published && h->not_ready == NULL) {
		answer(c, 200, "text/plain; charset=utf-8", "ready\n", 6, head);
	} else {
		len = asprintf(&body, "not ready: %s\n",
			       h->published ? h->not_ready : "starting up");
		if (len < 0) {
			answer_error(c, 500);
			return;
		}
		answer(c, 503, "text/plain; charset=utf-8", body, (size_t)len, head);
		free(body);
	}
}

/*
 * Looks at what has arrived: answers once the request is whole, or once it
 * cannot fit. True when it did (the connection may be gone).
 */
static bool progress(struct conn *c)
{
	const char *b = c->in, *nl;

	if (c->reqline == 0) {
		nl = memchr(b, '\n', c->len);
		if (nl == NULL ? c->len > DC_HTTP_MAX_LINE : (size_t)(nl - b) > DC_HTTP_MAX_LINE) {
			answer_error(c, 414);
			return true;
		}
		if (nl == NULL)
			return false;
		c->reqline = c->scan = (size_t)(nl - b) + 1;
	}
	while ((nl = memchr(b + c->scan, '\n', c->len - c->scan)) != NULL) {
		size_t n = (size_t)(nl - (b + c->scan));

		if (n == 0 || (n == 1 && b[c->scan] == '\r')) {
			serve(c, (size_t)(nl - b) + 1);
			return true;
		}
		c->scan = (size_t)(nl - b) + 1;
	}
	if (c->len == sizeof(c->in)) {
		answer_error(c, 431);
		return true;
	}
	return false;
}

static void conn_read(struct conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* Gone before the request was whole: nobody to answer. */
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->len += (size_t)n;
		if (progress(c))
			return;
	}
}

static void on_conn_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;

	switch (c->phase) {
	case READING:
		conn_read(c);
		break;
	case WRITING:
		conn_send(c);
		break;
	case LINGERING:
		conn_drain(c);
		break;
	}
}

static void on_conn_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = t->data;

	if (c->phase != READING) {
		conn_close(c);
		return;
	}
	/* Idle, or too slow (a byte a second holds a connection forever): say so, hang up. */
	c->linger = false;
	answer_error(c, 408);
}

static int conn_open(struct dc_http *h, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -ENOMEM;
	c->h = h;
	c->fd = fd;
	c->phase = READING;
	c->linger = true;
	ev_io_init(&c->io, on_conn_io, fd, EV_READ);
	c->io.data = c;
	ev_timer_init(&c->timer, on_conn_timeout, DC_HTTP_REQUEST_MS / 1000.0, 0.0);
	c->timer.data = c;
	ev_io_start(h->loop, &c->io);
	ev_timer_start(h->loop, &c->timer);
	c->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	return 0;
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct dc_http *h = io->data;

	/* A request's time counts from its accept, not from when this iteration began. */
	ev_now_update(loop);
	while (h->nconns < DC_HTTP_MAX_CONNECTIONS) {
		int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (fd < 0) {
			/* Out of fds or memory: the backlog waits, the loop does not spin. */
			if (!h->accept_failing)
				dc_log_warn("metrics_listen: accept: %s", strerror(errno));
			h->accept_failing = true;
			ev_io_stop(loop, &h->accept_io);
			ev_timer_set(&h->pause, ACCEPT_PAUSE_MS / 1000.0, 0.0);
			ev_timer_start(loop, &h->pause);
			return;
		}
		h->accept_failing = false;
		if (conn_open(h, fd) < 0) {
			dc_log_warn("metrics_listen: out of memory for a connection");
			close(fd);
		}
	}
	/* Full: the next ones wait in the backlog until a connection closes. */
	ev_io_stop(loop, &h->accept_io);
}

static void on_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct dc_http *h = t->data;

	if (h->nconns < DC_HTTP_MAX_CONNECTIONS)
		ev_io_start(loop, &h->accept_io);
}

/* ------------------------------------------------------------ the server */

int dc_http_open(struct dc_http **out, struct ev_loop *loop, const char *addr)
{
	struct dc_http *h;
	struct addrinfo *res;
	char err[320], shown[DC_SHOWN_VALUE];
	int fd;

	if (resolve(addr, &res, err, sizeof(err)) < 0) {
		dc_log_error("metrics_listen %s: %s", dc_log_shown(addr, shown, sizeof(shown)),
			     err);
		return -EINVAL;
	}
	fd = bind_to(res);
	freeaddrinfo(res);
	if (fd >= 0 && listen(fd, BACKLOG) < 0) {
		int e = errno;

		close(fd);
		fd = -e;
	}
	if (fd < 0) {
		dc_log_error("metrics_listen %s: %s", dc_log_shown(addr, shown, sizeof(shown)),
			     strerror(-fd));
		return fd;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		close(fd);
		dc_log_error("metrics_listen: out of memory");
		return -ENOMEM;
	}
	h->loop = loop;
	h->fd = fd;
	ev_io_init(&h->accept_io, on_accept, fd, EV_READ);
	h->accept_io.data = h;
	ev_timer_init(&h->pause, on_pause, 0.0, 0.0);
	h->pause.data = h;
	ev_io_start(loop, &h->accept_io);
	*out = h;
	return 0;
}

void dc_http_close(struct dc_http *h)
{
	if (h == NULL)
		return;
	ev_io_stop(h->loop, &h->accept_io);
	ev_timer_stop(h->loop, &h->pause);
	close(h->fd);
	/* conn_close would restart accepting: the listener is gone first. */
	while (h->conns != NULL) {
		struct conn *c = h->conns;

		h->conns = c->next;
		ev_io_stop(h->loop, &c->io);
		ev_timer_stop(h->loop, &c->timer);
		close(c->fd);
		free(c->out);
		free(c);
	}
	free(h->metrics);
	free(h->not_ready);
	free(h);
}

void dc_http_publish(struct dc_http *h, char *metrics, size_t len, char *not_ready)
{
	free(h->metrics);
	free(h->not_ready);
	h->metrics = metrics;
	h->metrics_len = metrics != NULL ? len : 0;
	h->not_ready = not_ready;
	h->published = true;
}

/*
 * Reading one INI file into the configuration model: inih splits key = value
 * lines, a line-counting reader gives every problem its line, and ${NAME}
 * takes values from the environment.
 */
#include "config_internal.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CUR_SKIP ((size_t)-2) /* in a section that is ignored or broken */

/* One file being parsed: the reader's position and the current section. */
struct parse {
	struct load *ld;
	enum layer layer;
	const char *path;
	const char *buf;
	size_t len, pos;
	unsigned line;
	size_t cur;
};

/* A growing string; on allocation failure it stays failed and keeps NULL. */
struct buf {
	char *p;
	size_t n, cap;
	bool failed;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 32;
		char *p;

		while (cap < b->n + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			free(b->p);
			b->p = NULL;
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Takes the string; NULL when any step ran out of memory. */
static char *buf_take(struct buf *b)
{
	if (b->failed)
		return NULL;
	if (b->p == NULL)
		return strdup("");
	return b->p;
}

/* Optimal string alignment distance, case-blind; SIZE_MAX for long strings. */
static size_t distance(const char *a, const char *b)
{
	unsigned char d[48][48];
	size_t la = strlen(a), lb = strlen(b);

	if (la >= 48 || lb >= 48)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned char)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned char)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]),
			    cb = tolower((unsigned char)b[j - 1]);
			unsigned v = d[i - 1][j - 1] + (ca != cb);

			if (d[i - 1][j] + 1u < v)
				v = d[i - 1][j] + 1u;
			if (d[i][j - 1] + 1u < v)
				v = d[i][j - 1] + 1u;
			if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1u < v)
				v = d[i - 2][j - 2] + 1u;
			d[i][j] = (unsigned char)v;
		}
	}
	return d[la][lb];
}

/* Close enough to be a typo of the other: at most 2 edits, fewer than its length. */
static bool near(const char *typed, const char *cand, size_t *best)
{
	size_t dist = distance(typed, cand);

	if (dist > 2 || dist >= strlen(typed) || dist >= *best)
		return false;
	*best = dist;
	return true;
}

/* ------------------------------------------------------------ ${NAME} */

static bool var_name_ok(const char *b, const char *e)
{
	if (isdigit((unsigned char)*b))
		return false;
	for (; b < e; b++)
		if (!isalnum((unsigned char)*b) && *b != '_')
			return false;
	return true;
}

/*
 * Replaces ${NAME} by the variable's value and $$ by $; any other $ stays.
 * Returns NULL after reporting a problem at where (or running out of memory).
 */
static char *expand(struct load *ld, const char *v, const char *where, const char *sect,
		    const char *key)
{
	struct buf b = {0};
	const char *p = v;
	char sn[DC_SHOWN_NAME];

	sect = dc_log_shown(sect, sn, sizeof(sn));
	while (*p) {
		const char *dollar = strchr(p, '$'), *close, *val;

		if (dollar == NULL) {
			buf_str(&b, p);
			break;
		}
		buf_add(&b, p, (size_t)(dollar - p));
		if (dollar[1] == '$') {
			buf_add(&b, "$", 1);
			p = dollar + 2;
			continue;
		}
		if (dollar[1] != '{') {
			buf_add(&b, "$", 1);
			p = dollar + 1;
			continue;
		}
		close = strchr(dollar + 2, '}');
		if (close == NULL) {
			dc_cfg_problem(ld, "%s: %s.%s: unterminated ${ (write $$ for a literal $)",
				       where, sect, key);
			goto fail;
		}
		if (close == dollar + 2) {
			dc_cfg_problem(ld, "%s: %s.%s: empty ${} (write $$ for a literal $)", where,
				       sect, key);
			goto fail;
		}
		if (!var_name_ok(dollar + 2, close)) {
			dc_cfg_problem(ld, "%s: %s.%s: bad variable name in ${%.*s}", where, sect,
				       key, (int)(close - dollar - 2), dollar + 2);
			goto fail;
		}
		val = dc_cfg_env_get(ld->envp, dollar + 2, (size_t)(close - dollar - 2));
		if (val == NULL) {
			dc_cfg_problem(ld, "%s: %s.%s: environment variable %.*s is not set", where,
				       sect, key, (int)(close - dollar - 2), dollar + 2);
			goto fail;
		}
		buf_str(&b, val);
		p = close + 1;
	}
	v = buf_take(&b);
	if (v == NULL)
		ld->oom = true;
	return (char *)v;
fail:
	free(b.p);
	return NULL;
}

/* ------------------------------------------------------------ files */

static void unknown_section(struct parse *p, const char *name, const char *kind)
{
	const struct dc_config *cfg = p->ld->cfg;
	const char *best = NULL;
	size_t dist = SIZE_MAX;
	const char *rest = name + strlen(kind);
	char sn[DC_SHOWN_NAME], sr[DC_SHOWN_NAME];

	for (size_t i = 0; i < cfg->nkeys; i++) {
		const char *cand = cfg->keys[i].section;
		bool multi = dc_cfg_multi_kind(cfg, cand);

		/* A single section is compared whole, a kind by its first word. */
		if ((multi ? *rest != '\0' : *rest == '\0') && near(kind, cand, &dist))
			best = cand;
	}
	if (best != NULL)
		dc_cfg_problem(p->ld, "%s:%u: unknown section [%s]; did you mean [%s%s]?", p->path,
			       p->line, dc_log_shown(name, sn, sizeof(sn)), best,
			       dc_log_shown(rest, sr, sizeof(sr)));
	else
		dc_cfg_problem(p->ld, "%s:%u: unknown section [%s]", p->path, p->line,
			       dc_log_shown(name, sn, sizeof(sn)));
}

/* Takes the text between [ and ]: finds or makes the section keys go to. */
static void begin_section(struct parse *p, const char *b, const char *e)
{
	struct load *ld = p->ld;
	char name[256], kind[128], sn[DC_SHOWN_NAME];
	const char *rest;
	size_t kn, si;
	bool known, multi;

	while (b < e && isspace((unsigned char)*b))
		b++;
	while (e > b && isspace((unsigned char)e[-1]))
		e--;
	p->cur = CUR_SKIP;
	if (b == e) {
		dc_cfg_problem(ld, "%s:%u: syntax error: empty section name", p->path, p->line);
		return;
	}
	for (rest = b; rest < e && !isspace((unsigned char)*rest); rest++)
		;
	kn = (size_t)(rest - b);
	while (rest < e && isspace((unsigned char)*rest))
		rest++;
	if (kn >= sizeof(kind) || (size_t)(e - b) >= sizeof(name)) {
		dc_cfg_problem(ld, "%s:%u: section name too long", p->path, p->line);
		return;
	}
	memcpy(kind, b, kn);
	kind[kn] = '\0';
	/* "[route   a]" and "[route a]" are the same section. */
	snprintf(name, sizeof(name), "%s%s%.*s", kind, rest < e ? " " : "", (int)(e - rest), rest);
	known = dc_cfg_kind_known(ld->cfg, kind);
	multi = known && dc_cfg_multi_kind(ld->cfg, kind);
	if (multi && rest == e) {
		dc_log_shown(kind, sn, sizeof(sn));
		dc_cfg_problem(ld, "%s:%u: section [%s] needs a name, as in [%s NAME]", p->path,
			       p->line, sn, sn);
		return;
	}
	if (!known || (!multi && rest < e)) {
		/* The global file is shared: other programs' sections are not ours to judge. */
		if (p->layer != LAYER_GLOBAL)
			unknown_section(p, name, kind);
		return;
	}
	si = dc_cfg_find_sect(ld->cfg, name);
	if (si == CUR_NONE)
		si = dc_cfg_add_sect(ld, kind, name);
	if (si == CUR_NONE)
		return;
	if (ld->cfg->sects[si].hdr[p->layer] != 0)
		dc_cfg_problem(ld, "%s:%u: duplicate section [%s] (first at line %u)", p->path,
			       p->line, dc_log_shown(name, sn, sizeof(sn)),
			       ld->cfg->sects[si].hdr[p->layer]);
	else
		ld->cfg->sects[si].hdr[p->layer] = p->line;
	p->cur = si;
}

/* Where inih's rules end a name or section: at one of chars, or a ';' after a blank. */
static const char *find_chars_or_comment(const char *s, const char *e, const char *chars)
{
	bool was_space = false;

	for (; s < e && !strchr(chars, *s) && !(was_space && *s == ';'); s++)
		was_space = isspace((unsigned char)*s);
	return s;
}

static char *blank_line(char *str)
{
	str[0] = '\n';
	str[1] = '\0';
	return str;
}

/*
 * inih's reader: hands over one line per call, so the line count here is
 * the line of whatever inih reports next. Section headers, comments and
 * malformed lines are dealt with here (inih gets a blank line instead), so
 * every syntax error is reported with its line, and leading blanks are
 * dropped so that an indented line is never taken as a continuation.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	const char *s, *nl, *b, *e, *end;
	size_t n;

	if (p->pos >= p->len || num < 3)
		return NULL;
	s = p->buf + p->pos;
	nl = memchr(s, '\n', p->len - p->pos);
	n = nl ? (size_t)(nl - s) : p->len - p->pos;
	p->pos += n + (nl != NULL);
	p->line++;
	b = s;
	e = s + n;
	if (p->line == 1 && n >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0)
		b += 3;
	while (b < e && isspace((unsigned char)*b))
		b++;
	while (e > b && isspace((unsigned char)e[-1]))
		e--;
	if (b == e || *b == ';' || *b == '#')
		return blank_line(str);
	if (memchr(b, '\0', (size_t)(e - b)) != NULL) {
		dc_cfg_problem(p->ld, "%s:%u: syntax error: NUL byte in line", p->path, p->line);
		return blank_line(str);
	}
	if (*b == '[') {
		end = find_chars_or_comment(b + 1, e, "]");
		if (end == e) {
			dc_cfg_problem(p->ld, "%s:%u: syntax error: missing ]", p->path, p->line);
			p->cur = CUR_SKIP;
		} else {
			begin_section(p, b + 1, end);
		}
		return blank_line(str);
	}
	end = find_chars_or_comment(b, e, "=:");
	if (end == e || (*end != '=' && *end != ':')) {
		dc_cfg_problem(p->ld, "%s:%u: syntax error: expected key = value", p->path,
			       p->line);
		return blank_line(str);
	}
	if (end == b) {
		dc_cfg_problem(p->ld, "%s:%u: syntax error: missing key before %c", p->path,
			       p->line, *end);
		return blank_line(str);
	}
	if ((size_t)(e - b) + 2 > (size_t)num) {
		dc_cfg_problem(p->ld, "%s:%u: line too long (more than %d characters)", p->path,
			       p->line, num - 2);
		return blank_line(str);
	}
	memcpy(str, b, (size_t)(e - b));
	str[e - b] = '\n';
	str[e - b + 1] = '\0';
	return str;
}

static void unknown_key(struct parse *p, const struct sect *s, const char *key)
{
	const struct dc_config *cfg = p->ld->cfg;
	const struct dc_cfg_key *own = NULL, *other = NULL, *exact = NULL;
	size_t dist = SIZE_MAX, odist = SIZE_MAX;
	char sk[DC_SHOWN_NAME], sn[DC_SHOWN_NAME];

	for (size_t i = 0; i < cfg->nkeys; i++) {
		const struct dc_cfg_key *k = &cfg->keys[i];

		if (strcmp(k->section, s->kind) == 0) {
			if (near(key, k->key, &dist))
				own = k;
		} else if (strcmp(k->key, key) == 0) {
			if (exact == NULL)
				exact = k;
		} else if (near(key, k->key, &odist)) {
			other = k;
		}
	}
	dc_log_shown(key, sk, sizeof(sk));
	dc_log_shown(s->name, sn, sizeof(sn));
	if (exact != NULL)
		dc_cfg_problem(p->ld, "%s:%u: unknown key %s in [%s]; it belongs in [%s%s]",
			       p->path, p->line, sk, sn, exact->section,
			       dc_cfg_multi_kind(cfg, exact->section) ? " NAME" : "");
	else if (own != NULL)
		dc_cfg_problem(p->ld, "%s:%u: unknown key %s in [%s]; did you mean %s?", p->path,
			       p->line, sk, sn, own->key);
	else if (other != NULL)
		dc_cfg_problem(p->ld, "%s:%u: unknown key %s in [%s]; did you mean %s in [%s%s]?",
			       p->path, p->line, sk, sn, other->key, other->section,
			       dc_cfg_multi_kind(cfg, other->section) ? " NAME" : "");
	else
		dc_cfg_problem(p->ld, "%s:%u: unknown key %s in [%s]", p->path, p->line, sk, sn);
}

static int on_pair(void *user, const char *section, const char *key, const char *value)
{
	struct parse *p = user;
	struct load *ld = p->ld;
	struct sect *s;
	char where[4200], sn[DC_SHOWN_NAME];
	char *v;
	long ki;

	(void)section;
	if (p->cur == CUR_NONE) {
		dc_cfg_problem(ld, "%s:%u: key %s before any [section]", p->path, p->line,
			       dc_log_shown(key, sn, sizeof(sn)));
		return 1;
	}
	if (p->cur == CUR_SKIP)
		return 1;
	s = &ld->cfg->sects[p->cur];
	ki = dc_cfg_find_key(ld->cfg, s->kind, key);
	if (ki < 0) {
		unknown_key(p, s, key);
		return 1;
	}
	if (s->vals[ki].seen[p->layer] != 0) {
		dc_cfg_problem(ld, "%s:%u: duplicate key %s.%s (first at line %u)", p->path,
			       p->line, dc_log_shown(s->name, sn, sizeof(sn)), key,
			       s->vals[ki].seen[p->layer]);
		return 1;
	}
	s->vals[ki].seen[p->layer] = p->line;
	snprintf(where, sizeof(where), "%s:%u", p->path, p->line);
	v = expand(ld, value, where, s->name, key);
	if (v == NULL)
		return 1;
	dc_cfg_set_value(ld, p->cur, (size_t)ki, v, where, true);
	free(v);
	return 1;
}

/* The whole file; -1 with errno set and *opened telling which step failed. */
static int read_all(const char *path, char **out, size_t *len, bool *opened)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct buf b = {0};
	char chunk[4096];
	ssize_t n;
	int err = 0;

	*opened = fd >= 0;
	if (fd < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			break;
		}
		buf_add(&b, chunk, (size_t)n);
	}
	close(fd);
	if (err == 0 && b.failed)
		err = ENOMEM;
	if (err == 0 && (*out = buf_take(&b)) == NULL)
		err = ENOMEM;
	if (err != 0) {
		free(b.p);
		errno = err;
		return -1;
	}
	*len = b.n;
	return 0;
}

void dc_cfg_parse_file(struct load *ld, const char *path, enum layer layer)
{
	struct parse p = {.ld = ld, .layer = layer, .path = path, .cur = CUR_NONE};
	char *text = NULL;
	bool opened;
	int rc;

	if (read_all(path, &text, &p.len, &opened) < 0) {
		if (errno == ENOMEM)
			ld->oom = true;
		else
			dc_cfg_problem(ld, "%s: %s: %s", path,
				       opened ? "cannot read" : "cannot open", strerror(errno));
		return;
	}
	p.buf = text;
	rc = ini_parse_stream(read_line, &p, on_pair, &p);
	/* The reader keeps malformed lines from inih; anything left is its own limit. */
	if (rc > 0)
		dc_cfg_problem(ld, "%s:%d: syntax error", path, rc);
	else if (rc < 0)
		ld->oom = true;
	free(text);
}

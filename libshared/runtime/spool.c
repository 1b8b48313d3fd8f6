/*
 * The write-ahead spool of a source (format: an 8-byte magic, then entries
 * "u32 length, u32 CRC-32 of the body, body", little-endian; a body is a
 * record 'R' or a commit watermark 'C').
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "ring.h"
#include "runtime/spool.h"

#define MAGIC         "DCSPOOL1"
#define HDR           8u
#define ENTRY_HDR     8u
#define MAX_BODY      (256u << 20)
#define NO_KEY        UINT32_MAX
#define COMPACT_BYTES (4u << 20)
#define COPY_CHUNK    (64u << 10)

/* Where an uncommitted record starts in the file. */
struct pos {
	uint64_t seq, off;
};

struct dc_spool {
	int fd;
	char *path;
	bool fsync;
	uint64_t compact_bytes;
	uint64_t end;       /* file size */
	uint64_t next_seq;  /* of the next append */
	uint64_t committed; /* highest committed seq */
	struct pos *pos;    /* ring of uncommitted records, oldest first */
	size_t cap, head, n;
	uint8_t *buf; /* encoding scratch */
	size_t bufcap;
	bool replaying; /* a compaction now would move the entries under the replay */
};

/* ------------------------------------------------------------------ CRC-32 */

static uint32_t crc_table[256];

static void crc_init(void)
{
	static bool done;

	if (done)
		return;
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
	done = true;
}

static uint32_t crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

/* -------------------------------------------------------------- encoding */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int reserve(struct dc_spool *sp, size_t need)
{
	uint8_t *b;
	size_t cap = sp->bufcap ? sp->bufcap : 4096;

	if (need <= sp->bufcap)
		return 0;
	while (cap < need)
		cap *= 2;
	b = realloc(sp->buf, cap);
	if (!b)
		return -ENOMEM;
	sp->buf = b;
	sp->bufcap = cap;
	return 0;
}

/* A string with its NUL: "u32 length, bytes"; a decoder points into the body. */
static uint8_t *put_str(uint8_t *p, const char *s)
{
	size_t n = strlen(s) + 1;

	put32(p, (uint32_t)n);
	memcpy(p + 4, s, n);
	return p + 4 + n;
}

/* Encodes entry header + body of rec into sp->buf; returns the entry's size or -errno. */
static ssize_t encode_record(struct dc_spool *sp, const struct dc_spool_rec *rec)
{
	size_t body = 1 + 8 + 4 + strlen(rec->topic) + 1 + 4 + 4 + 4 + rec->len;
	uint8_t *p;

	if (rec->routing_key)
		body += strlen(rec->routing_key) + 1;
	for (size_t i = 0; i < rec->nattrs; i++)
		body += 8 + strlen(rec->attrs[i].key) + strlen(rec->attrs[i].value) + 2;
	if (body > MAX_BODY)
		return -EMSGSIZE;
	if (reserve(sp, ENTRY_HDR + body) != 0)
		return -ENOMEM;
	p = sp->buf + ENTRY_HDR;
	*p++ = 'R';
	put64(p, rec->seq);
	p = put_str(p + 8, rec->topic);
	if (rec->routing_key) {
		p = put_str(p, rec->routing_key);
	} else {
		put32(p, NO_KEY);
		p += 4;
	}
	put32(p, (uint32_t)rec->nattrs);
	p += 4;
	for (size_t i = 0; i < rec->nattrs; i++) {
		p = put_str(p, rec->attrs[i].key);
		p = put_str(p, rec->attrs[i].value);
	}
	put32(p, (uint32_t)rec->len);
	if (rec->len)
		memcpy(p + 4, rec->payload, rec->len);
	put32(sp->buf, (uint32_t)body);
	put32(sp->buf + 4, crc32(sp->buf + ENTRY_HDR, body));
	return (ssize_t)(ENTRY_HDR + body);
}

/* A bounded reader over one body. */
struct cursor {
	const uint8_t *p, *end;
	bool ok;
};

static uint32_t cur32(struct cursor *c)
{
	uint32_t v;

	if (!c->ok || c->end - c->p < 4) {
		c->ok = false;
		return 0;
	}
	v = get32(c->p);
	c->p += 4;
	return v;
}

static const char *cur_str(struct cursor *c, bool optional)
{
	uint32_t n = cur32(c);
	const char *s;

	if (optional && c->ok && n == NO_KEY)
		return NULL;
	if (!c->ok || n == 0 || (size_t)(c->end - c->p) < n || c->p[n - 1] != '\0') {
		c->ok = false;
		return NULL;
	}
	s = (const char *)c->p;
	c->p += n;
	return s;
}

/*
 * Decodes a record body; attrs (when wanted) is malloc'd into *attrs.
 * Returns 0, -EINVAL for a malformed body, -ENOMEM.
 */
static int decode_record(const uint8_t *body, size_t len, struct dc_spool_rec *rec,
			 struct dn_attr **attrs)
{
	struct cursor c = {body + 9, body + len, len >= 9};
	uint32_t n;

	memset(rec, 0, sizeof(*rec));
	if (attrs)
		*attrs = NULL;
	if (!c.ok)
		return -EINVAL;
	rec->seq = get64(body + 1);
	rec->topic = cur_str(&c, false);
	rec->routing_key = cur_str(&c, true);
	n = cur32(&c);
	/* Each attribute takes at least 10 bytes: a bound before allocating. */
	if (!c.ok || n > (size_t)(c.end - c.p) / 10)
		return -EINVAL;
	if (attrs && !(*attrs = calloc(n ? n : 1, sizeof(**attrs))))
		return -ENOMEM;
	for (uint32_t i = 0; i < n && c.ok; i++) {
		const char *k = cur_str(&c, false), *v = cur_str(&c, false);

		if (attrs && c.ok)
			(*attrs)[i] = (struct dn_attr){k, v};
	}
	rec->len = cur32(&c);
	if (!c.ok || (size_t)(c.end - c.p) != rec->len) {
		if (attrs) {
			free(*attrs);
			*attrs = NULL;
		}
		return -EINVAL;
	}
	rec->payload = c.p;
	rec->attrs = attrs ? *attrs : NULL;
	rec->nattrs = n;
	return 0;
}

/* ------------------------------------------------------------------ file I/O */

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* shorter than its size said */
		got += (size_t)r;
	}
	return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		done += (size_t)w;
	}
	return 0;
}

/*
 * Reads the entry at off into sp->buf (body at sp->buf, length *len).
 * Returns 1 when read, 0 at a clean end, -EINVAL when torn or corrupt,
 * another -errno on a read error.
 */
static int read_entry(struct dc_spool *sp, uint64_t off, uint32_t *len)
{
	uint8_t h[ENTRY_HDR];
	int rc;

	if (off == sp->end)
		return 0;
	if (sp->end - off < ENTRY_HDR)
		return -EINVAL;
	if ((rc = pread_all(sp->fd, h, sizeof(h), off)) != 0)
		return rc;
	*len = get32(h);
	if (*len < 9 || *len > MAX_BODY || sp->end - off - ENTRY_HDR < *len)
		return -EINVAL;
	if (reserve(sp, *len) != 0)
		return -ENOMEM;
	if ((rc = pread_all(sp->fd, sp->buf, *len, off + ENTRY_HDR)) != 0)
		return rc;
	if (crc32(sp->buf, *len) != get32(h + 4))
		return -EINVAL;
	if (sp->buf[0] == 'C')
		return *len == 9 ? 1 : -EINVAL;
	return sp->buf[0] == 'R' ? 1 : -EINVAL;
}

static int pos_push(struct dc_spool *sp, uint64_t seq, uint64_t off)
{
	if (dc_ring_reserve(&sp->pos, sizeof(*sp->pos), &sp->cap, &sp->head, sp->n, 256) != 0)
		return -ENOMEM;
	sp->pos[(sp->head + sp->n) % sp->cap] = (struct pos){seq, off};
	sp->n++;
	return 0;
}

static void pos_pop_upto(struct dc_spool *sp, uint64_t seq)
{
	while (sp->n && sp->pos[sp->head].seq <= seq) {
		sp->head = (sp->head + 1) % sp->cap;
		sp->n--;
	}
}

static int sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Copies the uncommitted tail into a new file that replaces the spool. */
static int rewrite(struct dc_spool *sp)
{
	uint64_t from = sp->pos[sp->head].off, delta = from - HDR, off;
	size_t tmplen = strlen(sp->path) + 5;
	char *tmp = malloc(tmplen);
	int fd = -1, rc;

	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, tmplen, "%s.tmp", sp->path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	/* The new inode is the spool once renamed: it carries the lock from the start. */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = reserve(sp, COPY_CHUNK)) != 0 || (rc = pwrite_all(fd, MAGIC, HDR, 0)) != 0)
		goto fail;
	for (off = from; off < sp->end;) {
		size_t n = sp->end - off < COPY_CHUNK ? (size_t)(sp->end - off) : COPY_CHUNK;

		if ((rc = pread_all(sp->fd, sp->buf, n, off)) != 0 ||
		    (rc = pwrite_all(fd, sp->buf, n, off - delta)) != 0)
			goto fail;
		off += n;
	}
	if (sp->fsync && fdatasync(fd) != 0) {
		rc = -errno;
		goto fail;
	}
	if (rename(tmp, sp->path) != 0) {
		rc = -errno;
		goto fail;
	}
	if (sp->fsync && (rc = sync_dir(sp->path)) != 0)
		dc_log_warn("spool %s: cannot sync its directory: %s", sp->path, strerror(-rc));
	free(tmp);
	close(sp->fd);
	sp->fd = fd;
	sp->end -= delta;
	for (size_t i = 0; i < sp->n; i++)
		sp->pos[(sp->head + i) % sp->cap].off -= delta;
	return 0;
fail:
	if (fd >= 0) {
		unlink(tmp);
		close(fd);
	}
	free(tmp);
	return rc;
}

/*
 * Drops the committed prefix once it is large: a truncation when nothing is
 * pending, else a rewrite when the prefix outweighs what it would copy, so
 * the file stays within about compact_bytes plus twice what is pending.
 */
static int maybe_compact(struct dc_spool *sp, bool force)
{
	uint64_t first = sp->n ? sp->pos[sp->head].off : sp->end;
	uint64_t prefix = first - HDR;
	int rc;

	if (prefix == 0 || sp->replaying || (!force && prefix < sp->compact_bytes))
		return 0;
	if (sp->n == 0) {
		if (ftruncate(sp->fd, HDR) != 0) {
			rc = -errno;
			dc_log_warn("spool %s: cannot truncate: %s", sp->path, strerror(-rc));
			return rc;
		}
		sp->end = HDR;
		return 0;
	}
	if (!force && prefix < sp->end - first)
		return 0;
	rc = rewrite(sp);
	if (rc != 0)
		dc_log_warn("spool %s: cannot compact: %s", sp->path, strerror(-rc));
	return rc;
}

/* Reads every entry; truncates a torn or corrupt tail. */
static int scan(struct dc_spool *sp)
{
	uint64_t off = HDR, max_seq = 0;
	uint32_t len;
	int rc;

	while ((rc = read_entry(sp, off, &len)) == 1) {
		uint64_t seq = get64(sp->buf + 1);
		struct dc_spool_rec rec;

		if (sp->buf[0] == 'R') {
			if (decode_record(sp->buf, len, &rec, NULL) != 0) {
				rc = -EINVAL;
				break;
			}
			if ((rc = pos_push(sp, seq, off)) != 0)
				return rc;
		} else if (seq > sp->committed) {
			sp->committed = seq;
		}
		if (seq > max_seq)
			max_seq = seq;
		off += ENTRY_HDR + len;
	}
	if (rc == -EINVAL) {
		dc_log_warn("spool %s: torn or corrupt entry at offset %llu: dropping its last "
			    "%llu bytes",
			    sp->path, (unsigned long long)off, (unsigned long long)(sp->end - off));
		if (ftruncate(sp->fd, (off_t)off) != 0)
			return -errno;
		sp->end = off;
	} else if (rc != 0) {
		return rc;
	}
	sp->next_seq = max_seq + 1;
	pos_pop_upto(sp, sp->committed);
	return 0;
}

/* A new or empty file gets the magic; a torn one is started over. */
static int check_header(struct dc_spool *sp)
{
	char magic[HDR];
	int rc;

	if (sp->end >= HDR) {
		if ((rc = pread_all(sp->fd, magic, HDR, 0)) != 0)
			return rc;
		if (memcmp(magic, MAGIC, HDR) != 0) {
			dc_log_error("spool %s: not a danube-connect spool file", sp->path);
			return -EINVAL;
		}
		return 0;
	}
	if (sp->end > 0)
		dc_log_warn("spool %s: torn header (%llu bytes): starting over", sp->path,
			    (unsigned long long)sp->end);
	if (ftruncate(sp->fd, 0) != 0)
		return -errno;
	if ((rc = pwrite_all(sp->fd, MAGIC, HDR, 0)) != 0)
		return rc;
	sp->end = HDR;
	if (sp->fsync) {
		if (fdatasync(sp->fd) != 0)
			return -errno;
		return sync_dir(sp->path);
	}
	return 0;
}

int dc_spool_open(const char *path, const struct dc_spool_opts *opts, struct dc_spool **out)
{
	struct dc_spool *sp = calloc(1, sizeof(*sp));
	struct stat st;
	int rc;

	*out = NULL;
	crc_init();
	if (!sp)
		return -ENOMEM;
	sp->fd = -1;
	sp->fsync = opts && opts->fsync;
	sp->compact_bytes = opts && opts->compact_bytes ? opts->compact_bytes : COMPACT_BYTES;
	if (!(sp->path = strdup(path))) {
		rc = -ENOMEM;
		goto fail;
	}
	sp->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->fd < 0 || fstat(sp->fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	if (flock(sp->fd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	sp->end = (uint64_t)st.st_size;
	if ((rc = check_header(sp)) != 0 || (rc = scan(sp)) != 0)
		goto fail;
	/* Replay reads the file from its start: leave only what is pending (failing is harmless).
	 */
	maybe_compact(sp, true);
	*out = sp;
	return 0;
fail:
	dc_spool_close(sp);
	return rc;
}

int dc_spool_replay(struct dc_spool *sp, dc_spool_replay_fn fn, void *arg)
{
	uint64_t off = HDR;
	uint32_t len;
	int rc;

	while ((rc = read_entry(sp, off, &len)) == 1) {
		struct dc_spool_rec rec;
		struct dn_attr *attrs;

		off += ENTRY_HDR + len;
		if (sp->buf[0] != 'R' || get64(sp->buf + 1) <= sp->committed)
			continue;
		if ((rc = decode_record(sp->buf, len, &rec, &attrs)) != 0)
			return rc;
		sp->replaying = true;
		rc = fn(arg, &rec);
		sp->replaying = false;
		free(attrs);
		if (rc != 0)
			return rc;
	}
	/* The file was checked at open: a bad entry now is an I/O problem. */
	return rc == -EINVAL ? -EIO : rc;
}

int dc_spool_append(struct dc_spool *sp, struct dc_spool_rec *rec)
{
	ssize_t n;
	int rc;

	rec->seq = sp->next_seq++;
	n = encode_record(sp, rec);
	if (n < 0)
		return (int)n;
	if ((rc = pos_push(sp, rec->seq, sp->end)) != 0)
		return rc;
	rc = pwrite_all(sp->fd, sp->buf, (size_t)n, sp->end);
	if (rc == 0 && sp->fsync && fdatasync(sp->fd) != 0)
		rc = -errno;
	if (rc != 0) {
		/* A partial entry would hide every later one behind a corrupt tail. */
		if (ftruncate(sp->fd, (off_t)sp->end) != 0)
			dc_log_warn("spool %s: cannot undo a partial write: %s", sp->path,
				    strerror(errno));
		sp->n--;
		return rc;
	}
	sp->end += (uint64_t)n;
	return 0;
}

int dc_spool_commit(struct dc_spool *sp, uint64_t seq)
{
	uint8_t e[ENTRY_HDR + 9];
	int rc;

	if (seq <= sp->committed)
		return 0;
	sp->committed = seq;
	pos_pop_upto(sp, seq);
	/* Nothing pending and a large file: a truncation says it all, no watermark needed. */
	if (sp->n == 0 && sp->end - HDR >= sp->compact_bytes) {
		maybe_compact(sp, false);
		if (sp->end == HDR)
			return 0;
	}
	e[ENTRY_HDR] = 'C';
	put64(e + ENTRY_HDR + 1, seq);
	put32(e, 9);
	put32(e + 4, crc32(e + ENTRY_HDR, 9));
	if ((rc = pwrite_all(sp->fd, e, sizeof(e), sp->end)) != 0) {
		if (ftruncate(sp->fd, (off_t)sp->end) != 0)
			dc_log_warn("spool %s: cannot undo a partial write: %s", sp->path,
				    strerror(errno));
		return rc;
	}
	sp->end += sizeof(e);
	maybe_compact(sp, false);
	return 0;
}

uint64_t dc_spool_bytes(const struct dc_spool *sp)
{
	return sp->end;
}

size_t dc_spool_pending(const struct dc_spool *sp)
{
	return sp->n;
}

void dc_spool_close(struct dc_spool *sp)
{
	if (!sp)
		return;
	if (sp->fd >= 0)
		close(sp->fd);
	free(sp->pos);
	free(sp->buf);
	free(sp->path);
	free(sp);
}

/* The source's write-ahead spool: append, commit, reopen and replay, torn tails, compaction. */
#include "harness.h"

#include "runtime/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh spool path in the test's temp dir. */
static const char *spool_path(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/t.spool", th_tmpdir());
	return path;
}

static struct dc_spool *open_ok(const char *path, uint64_t compact_bytes)
{
	struct dc_spool_opts o = {.compact_bytes = compact_bytes};
	struct dc_spool *sp = NULL;

	ck_assert_int_eq(dc_spool_open(path, &o, &sp), 0);
	ck_assert_ptr_nonnull(sp);
	return sp;
}

static off_t file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

/* Record i: payload "payload-i" (empty for i % 5 == 0), topic /t/(i % 2), key for odd i. */
static uint64_t append_nth(struct dc_spool *sp, int i)
{
	char payload[64], seq[16], key[16];
	struct dn_attr attrs[2] = {{"seq", seq}, {"empty", ""}};
	struct dc_spool_rec r = {0};

	snprintf(payload, sizeof(payload), "payload-%d", i);
	snprintf(seq, sizeof(seq), "%d", i);
	snprintf(key, sizeof(key), "key-%d", i);
	r.topic = i % 2 ? "/t/1" : "/t/0";
	r.routing_key = i % 2 ? key : NULL;
	r.attrs = attrs;
	r.nattrs = 2;
	r.payload = payload;
	r.len = i % 5 == 0 ? 0 : strlen(payload);
	ck_assert_int_eq(dc_spool_append(sp, &r), 0);
	return r.seq;
}

/* What replay saw: the record numbers (from attribute seq), checked field by field. */
struct seen {
	int nums[4096];
	uint64_t seqs[4096];
	size_t n;
	size_t stop_after; /* 0 = never */
};

static int collect(void *arg, const struct dc_spool_rec *r)
{
	struct seen *s = arg;
	char want[64];
	int i;

	ck_assert_uint_eq(r->nattrs, 2);
	ck_assert_str_eq(r->attrs[0].key, "seq");
	ck_assert_str_eq(r->attrs[1].key, "empty");
	ck_assert_str_eq(r->attrs[1].value, "");
	i = atoi(r->attrs[0].value);
	ck_assert_str_eq(r->topic, i % 2 ? "/t/1" : "/t/0");
	if (i % 2) {
		snprintf(want, sizeof(want), "key-%d", i);
		ck_assert_str_eq(r->routing_key, want);
	} else {
		ck_assert_ptr_null(r->routing_key);
	}
	snprintf(want, sizeof(want), "payload-%d", i);
	if (i % 5 == 0) {
		ck_assert_uint_eq(r->len, 0);
	} else {
		ck_assert_uint_eq(r->len, strlen(want));
		ck_assert(memcmp(r->payload, want, r->len) == 0);
	}
	ck_assert(s->n < 4096);
	s->nums[s->n] = i;
	s->seqs[s->n] = r->seq;
	s->n++;
	return s->stop_after && s->n == s->stop_after ? 7 : 0;
}

/* Reopens path and checks that replay yields exactly records from..to, in order. */
static struct dc_spool *reopen_expect(const char *path, uint64_t compact_bytes, int from, int to)
{
	struct dc_spool *sp = open_ok(path, compact_bytes);
	struct seen *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(dc_spool_pending(sp), (size_t)(to >= from ? to - from + 1 : 0));
	ck_assert_int_eq(dc_spool_replay(sp, collect, s), 0);
	ck_assert_uint_eq(s->n, (size_t)(to >= from ? to - from + 1 : 0));
	for (size_t k = 0; k < s->n; k++) {
		ck_assert_int_eq(s->nums[k], from + (int)k);
		if (k)
			ck_assert_uint_gt(s->seqs[k], s->seqs[k - 1]);
	}
	free(s);
	return sp;
}

START_TEST(spool_replays_only_uncommitted_records_after_reopen)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 0);
	uint64_t seq[8];

	for (int i = 1; i <= 7; i++)
		seq[i] = append_nth(sp, i);
	for (int i = 2; i <= 7; i++)
		ck_assert_uint_eq(seq[i], seq[i - 1] + 1);
	ck_assert_uint_eq(dc_spool_pending(sp), 7);
	ck_assert_int_eq(dc_spool_commit(sp, seq[3]), 0);
	ck_assert_uint_eq(dc_spool_pending(sp), 4);
	/* An older watermark changes nothing. */
	ck_assert_int_eq(dc_spool_commit(sp, seq[1]), 0);
	ck_assert_uint_eq(dc_spool_pending(sp), 4);
	dc_spool_close(sp);

	sp = reopen_expect(path, 0, 4, 7);
	/* New appends continue after the replayed records; a crash now replays both. */
	ck_assert_uint_gt(append_nth(sp, 8), seq[7]);
	dc_spool_close(sp);
	sp = reopen_expect(path, 0, 4, 8);
	dc_spool_close(sp);
}
END_TEST

START_TEST(spool_fully_committed_reopens_empty_and_compacted)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 0);
	uint64_t last = 0;

	for (int i = 1; i <= 20; i++)
		last = append_nth(sp, i);
	ck_assert_int_eq(dc_spool_commit(sp, last), 0);
	ck_assert_uint_eq(dc_spool_pending(sp), 0);
	dc_spool_close(sp);
	ck_assert_int_gt(file_size(path), 8);
	sp = reopen_expect(path, 0, 1, 0);
	/* Only the 8-byte header is left. */
	ck_assert_int_eq(file_size(path), 8);
	ck_assert_uint_eq(dc_spool_bytes(sp), 8);
	dc_spool_close(sp);
}
END_TEST

START_TEST(spool_truncates_torn_tail_and_keeps_the_rest)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 0);
	off_t whole;

	for (int i = 1; i <= 3; i++)
		append_nth(sp, i);
	dc_spool_close(sp);
	whole = file_size(path);
	/* A crash in the middle of writing record 3. */
	ck_assert_int_eq(truncate(path, whole - 5), 0);
	sp = reopen_expect(path, 0, 1, 2);
	ck_assert_int_lt(file_size(path), whole - 5);
	/* What comes next is readable after the cut. */
	append_nth(sp, 3);
	dc_spool_close(sp);
	ck_assert_int_eq(file_size(path), whole);
	sp = reopen_expect(path, 0, 1, 3);
	dc_spool_close(sp);

	/* Only an entry header survived. */
	ck_assert_int_eq(truncate(path, whole + 4), 0);
	sp = reopen_expect(path, 0, 1, 3);
	dc_spool_close(sp);
	ck_assert_int_eq(file_size(path), whole);
}
END_TEST

START_TEST(spool_drops_everything_from_a_corrupt_entry_on)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 0);
	off_t one, two;
	char byte;
	int fd;

	append_nth(sp, 1);
	one = (off_t)dc_spool_bytes(sp);
	append_nth(sp, 2);
	two = (off_t)dc_spool_bytes(sp);
	append_nth(sp, 3);
	dc_spool_close(sp);
	/* A flipped bit in record 2's payload: its CRC no longer matches. */
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &byte, 1, two - 2), 1);
	byte ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &byte, 1, two - 2), 1);
	close(fd);
	sp = reopen_expect(path, 0, 1, 1);
	ck_assert_int_eq(file_size(path), one);
	dc_spool_close(sp);

	/* An absurd length is corrupt too, not an allocation. */
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\xff\xff\xff\x7f\0\0\0\0garbage", 15), 15);
	close(fd);
	sp = reopen_expect(path, 0, 1, 1);
	ck_assert_int_eq(file_size(path), one);
	dc_spool_close(sp);
}
END_TEST

START_TEST(spool_compaction_keeps_the_file_bounded_and_the_pending_records)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 4096);
	uint64_t seq[2001], max_size = 0;

	/* 50 pending at any time, committed one by one as a broker would. */
	for (int i = 1; i <= 2000; i++) {
		seq[i] = append_nth(sp, i);
		if (i > 50)
			ck_assert_int_eq(dc_spool_commit(sp, seq[i - 50]), 0);
		if (dc_spool_bytes(sp) > max_size)
			max_size = dc_spool_bytes(sp);
		ck_assert_uint_eq(dc_spool_bytes(sp), (uint64_t)file_size(path));
	}
	ck_assert_uint_eq(dc_spool_pending(sp), 50);
	/* 50 records are about 3 KiB: the bound is compact_bytes plus twice that. */
	ck_assert_msg(max_size < 4096 + 2 * 4096, "spool grew to %llu bytes",
		      (unsigned long long)max_size);
	dc_spool_close(sp);
	sp = reopen_expect(path, 4096, 1951, 2000);
	ck_assert_int_eq(dc_spool_commit(sp, seq[1980]), 0);
	dc_spool_close(sp);
	sp = reopen_expect(path, 4096, 1981, 2000);
	ck_assert_int_eq(dc_spool_commit(sp, seq[2000]), 0);
	dc_spool_close(sp);
	sp = reopen_expect(path, 4096, 1, 0);
	ck_assert_int_eq(file_size(path), 8);
	dc_spool_close(sp);
}
END_TEST

START_TEST(spool_truncates_when_everything_is_committed)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 1024);
	uint64_t last = 0;

	for (int round = 0; round < 20; round++) {
		for (int i = 1; i <= 30; i++)
			last = append_nth(sp, i);
		ck_assert_int_eq(dc_spool_commit(sp, last), 0);
		/* Every round's 30 records exceed 1 KiB: truncated to the header. */
		ck_assert_uint_eq(dc_spool_bytes(sp), 8);
		ck_assert_int_eq(file_size(path), 8);
	}
	dc_spool_close(sp);
}
END_TEST

static struct dc_spool *committing_spool;

/* A replayed record the runtime finishes at once (skipped) commits inside the replay. */
static int commit_each(void *arg, const struct dc_spool_rec *r)
{
	ck_assert_int_eq(dc_spool_commit(committing_spool, r->seq), 0);
	return collect(arg, r);
}

START_TEST(spool_commits_during_replay_do_not_disturb_it)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 1);
	struct seen *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	for (int i = 1; i <= 30; i++)
		append_nth(sp, i);
	dc_spool_close(sp);
	committing_spool = sp = open_ok(path, 1);
	ck_assert_int_eq(dc_spool_replay(sp, commit_each, s), 0);
	ck_assert_uint_eq(s->n, 30);
	for (size_t k = 0; k < s->n; k++)
		ck_assert_int_eq(s->nums[k], (int)k + 1);
	ck_assert_uint_eq(dc_spool_pending(sp), 0);
	free(s);
	dc_spool_close(sp);
	sp = reopen_expect(path, 1, 1, 0);
	dc_spool_close(sp);
}
END_TEST

START_TEST(spool_replay_stops_when_the_callback_says_so)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 0);
	struct seen *s = calloc(1, sizeof(*s));

	for (int i = 1; i <= 5; i++)
		append_nth(sp, i);
	dc_spool_close(sp);
	sp = open_ok(path, 0);
	s->stop_after = 2;
	ck_assert_int_eq(dc_spool_replay(sp, collect, s), 7);
	ck_assert_uint_eq(s->n, 2);
	free(s);
	dc_spool_close(sp);
}
END_TEST

START_TEST(spool_is_locked_against_a_second_process_and_checks_its_magic)
{
	const char *path = spool_path();
	struct dc_spool *sp = open_ok(path, 0), *other = NULL;
	char bad[512];

	ck_assert_int_eq(dc_spool_open(path, NULL, &other), -EBUSY);
	ck_assert_ptr_null(other);
	dc_spool_close(sp);
	sp = open_ok(path, 0);
	dc_spool_close(sp);

	snprintf(bad, sizeof(bad), "%s/bad.spool", th_tmpdir());
	ck_assert_int_eq(th_write_file(bad, "something else entirely\n"), 0);
	ck_assert_int_eq(dc_spool_open(bad, NULL, &other), -EINVAL);
	/* Never touched: it may be someone's data. */
	ck_assert_int_eq(file_size(bad), 24);
	/* A header torn at creation starts over. */
	ck_assert_int_eq(th_write_file(bad, "DCS"), 0);
	sp = reopen_expect(bad, 0, 1, 0);
	ck_assert_int_eq(file_size(bad), 8);
	dc_spool_close(sp);
}
END_TEST

START_TEST(spool_with_fsync_survives_reopen)
{
	const char *path = spool_path();
	struct dc_spool_opts o = {.fsync = true};
	struct dc_spool *sp = NULL;

	ck_assert_int_eq(dc_spool_open(path, &o, &sp), 0);
	for (int i = 1; i <= 10; i++)
		append_nth(sp, i);
	dc_spool_close(sp);
	sp = reopen_expect(path, 0, 1, 10);
	dc_spool_close(sp);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("spool");

	tcase_add_test(tc, spool_replays_only_uncommitted_records_after_reopen);
	tcase_add_test(tc, spool_fully_committed_reopens_empty_and_compacted);
	tcase_add_test(tc, spool_truncates_torn_tail_and_keeps_the_rest);
	tcase_add_test(tc, spool_drops_everything_from_a_corrupt_entry_on);
	tcase_add_test(tc, spool_compaction_keeps_the_file_bounded_and_the_pending_records);
	tcase_add_test(tc, spool_truncates_when_everything_is_committed);
	tcase_add_test(tc, spool_replay_stops_when_the_callback_says_so);
	tcase_add_test(tc, spool_commits_during_replay_do_not_disturb_it);
	tcase_add_test(tc, spool_is_locked_against_a_second_process_and_checks_its_magic);
	tcase_add_test(tc, spool_with_fsync_survives_reopen);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)

/* Unit tests for ring.c: growing a ring keeps its elements in order. */
#include "harness.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "ring.h"

struct item {
	uint64_t a, b;
};

/* Appends v at the ring's tail, growing it first. */
static void push(struct item **r, size_t *cap, size_t *head, size_t *n, uint64_t v)
{
	ck_assert_int_eq(dc_ring_reserve(r, sizeof(**r), cap, head, *n, 4), 0);
	(*r)[(*head + *n) % *cap] = (struct item){v, v * 3};
	(*n)++;
}

START_TEST(ring_grows_from_empty_to_min_cap_then_doubles)
{
	struct item *r = NULL;
	size_t cap = 0, head = 0, n = 0;

	push(&r, &cap, &head, &n, 1);
	ck_assert_uint_eq(cap, 4);
	for (uint64_t v = 2; v <= 5; v++)
		push(&r, &cap, &head, &n, v);
	ck_assert_uint_eq(cap, 8);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(r[(head + i) % cap].a, i + 1);
	free(r);
}
END_TEST

START_TEST(ring_wrapped_keeps_order_when_it_grows)
{
	struct item *r = NULL;
	size_t cap = 0, head = 0, n = 0;

	for (uint64_t v = 1; v <= 4; v++)
		push(&r, &cap, &head, &n, v);
	/* Take 3 from the head, add 3: the used part now wraps (head 3). */
	head = (head + 3) % cap;
	n -= 3;
	for (uint64_t v = 5; v <= 7; v++)
		push(&r, &cap, &head, &n, v);
	ck_assert_uint_eq(cap, 4);
	ck_assert_uint_eq(head, 3);
	push(&r, &cap, &head, &n, 8);
	ck_assert_uint_eq(cap, 8);
	ck_assert_uint_eq(head, 0);
	ck_assert_uint_eq(n, 5);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(r[i].a, i + 4);
		ck_assert_uint_eq(r[i].b, (i + 4) * 3);
	}
	free(r);
}
END_TEST

START_TEST(ring_with_room_is_left_alone)
{
	struct item *r = NULL, *before;
	size_t cap = 0, head = 0, n = 0;

	push(&r, &cap, &head, &n, 1);
	before = r;
	ck_assert_int_eq(dc_ring_reserve(&r, sizeof(*r), &cap, &head, n, 4), 0);
	ck_assert_ptr_eq(r, before);
	ck_assert_uint_eq(cap, 4);
	free(r);
}
END_TEST

START_TEST(ring_too_large_is_enomem_and_unchanged)
{
	struct item *r = NULL;
	size_t cap = SIZE_MAX / sizeof(*r), head = 0;

	ck_assert_int_eq(dc_ring_reserve(&r, sizeof(*r), &cap, &head, cap, 4), -ENOMEM);
	ck_assert_ptr_null(r);
	ck_assert_uint_eq(cap, SIZE_MAX / sizeof(*r));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, ring_grows_from_empty_to_min_cap_then_doubles);
	tcase_add_test(tc, ring_wrapped_keeps_order_when_it_grows);
	tcase_add_test(tc, ring_with_room_is_left_alone);
	tcase_add_test(tc, ring_too_large_is_enomem_and_unchanged);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)

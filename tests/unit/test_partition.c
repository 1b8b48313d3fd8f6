/* Partition choice: FNV-1a 64 against the published test vectors, and names. */
#include "danube/client.h"
#include "harness.h"

#include <string.h>

START_TEST(fnv1a64_matches_known_vectors)
{
	ck_assert_uint_eq(dn_fnv1a64("", 0), 0xcbf29ce484222325ull);
	ck_assert_uint_eq(dn_fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
	ck_assert_uint_eq(dn_fnv1a64("foobar", 6), 0x85944171f73967e8ull);
}
END_TEST

START_TEST(key_partition_is_hash_modulo_count)
{
	const char *keys[] = {"", "a", "foobar", "sensor-17", "user-42"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		uint64_t h = dn_fnv1a64(keys[i], strlen(keys[i]));

		for (uint32_t n = 1; n <= 7; n++)
			ck_assert_uint_eq(dn_partition_for_key(keys[i], strlen(keys[i]), n), h % n);
	}
	/* Worked by hand: 0xaf63dc4c8601ec8c % 4 == 0, 0x85944171f73967e8 % 5 == 3 */
	ck_assert_uint_eq(dn_partition_for_key("a", 1, 4), 0);
	ck_assert_uint_eq(dn_partition_for_key("foobar", 6, 5), 3);
}
END_TEST

START_TEST(zero_partitions_is_partition_zero)
{
	ck_assert_uint_eq(dn_partition_for_key("x", 1, 0), 0);
}
END_TEST

START_TEST(partition_names_follow_the_rust_client)
{
	char buf[64];

	ck_assert_int_eq(dn_partition_name(buf, sizeof(buf), "/default/t", 0), 0);
	ck_assert_str_eq(buf, "/default/t-part-0");
	ck_assert_int_eq(dn_partition_name(buf, sizeof(buf), "/ns/orders", 12), 0);
	ck_assert_str_eq(buf, "/ns/orders-part-12");
	ck_assert_int_eq(dn_partition_name(buf, 8, "/default/t", 1), -ENAMETOOLONG);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("partition");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, fnv1a64_matches_known_vectors);
	tcase_add_test(tc, key_partition_is_hash_modulo_count);
	tcase_add_test(tc, zero_partitions_is_partition_zero);
	tcase_add_test(tc, partition_names_follow_the_rust_client);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)

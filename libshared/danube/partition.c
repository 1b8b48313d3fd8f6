/*
 * Partition choice for producers: round-robin, or FNV-1a 64 of the routing
 * key so that a key lands on the same partition as with the Rust client.
 */
#include "danube/client.h"

uint64_t dn_fnv1a64(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint32_t dn_partition_for_key(const char *key, size_t key_len, uint32_t partitions)
{
	if (partitions == 0)
		return 0;
	return (uint32_t)(dn_fnv1a64(key, key_len) % partitions);
}

int dn_partition_name(char *buf, size_t cap, const char *topic, uint32_t index)
{
	int n = snprintf(buf, cap, "%s-part-%u", topic, index);

	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/* Growing a ring buffer: see ring.h. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

int dc_ring_reserve(void *bufp, size_t elem, size_t *cap, size_t *head, size_t n, size_t min_cap)
{
	size_t ncap = *cap ? *cap * 2 : min_cap;
	size_t first;
	char *old, *p;

	if (n < *cap)
		return 0;
	if (ncap < *cap || ncap > SIZE_MAX / elem || !(p = malloc(ncap * elem)))
		return -ENOMEM;
	/* The pointer is read and written as bytes: bufp may be any T **. */
	memcpy(&old, bufp, sizeof(old));
	/* The used part runs from head to the end, then wraps to the start. */
	first = *cap - *head < n ? *cap - *head : n;
	if (n) {
		memcpy(p, old + *head * elem, first * elem);
		memcpy(p + first * elem, old, (n - first) * elem);
	}
	free(old);
	memcpy(bufp, &p, sizeof(p));
	*cap = ncap;
	*head = 0;
	return 0;
}

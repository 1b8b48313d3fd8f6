/*
 * Growing a ring buffer (an array used from head, wrapping at cap): the
 * spool's positions and source-postgres's LSN marks are both rings.
 */
#ifndef DC_RING_H
#define DC_RING_H

#include <stddef.h>

/*
 * Makes room for one more element in a ring of *cap elements of size elem,
 * n of them used from *head; bufp is the address of the ring's pointer
 * (any object pointer type: &ring->items). When full, the ring moves into a
 * new array twice as large (min_cap at first), unwrapped so *head is 0.
 * Returns 0, or -ENOMEM with the ring unchanged.
 */
int dc_ring_reserve(void *bufp, size_t elem, size_t *cap, size_t *head, size_t n, size_t min_cap);

#endif

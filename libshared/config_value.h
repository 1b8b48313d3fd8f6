/* Checking one configuration value against its key (internal to the loader). */
#ifndef DC_CONFIG_VALUE_H
#define DC_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/*
 * Checks text against k. On success *num holds the number (INT, DURATION in
 * ms, BOOL as 0/1) and *canon, when not NULL, the spelling to store (the
 * table's enum choice, "true"/"false"); on failure msg says what was
 * expected, without the value, so that secrets stay out of messages.
 */
bool dc_cfg_check_value(const struct dc_cfg_key *k, const char *text, int64_t *num,
			const char **canon, char *msg, size_t msz);

#endif

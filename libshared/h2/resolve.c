/*
 * Name resolution without blocking the loop: glibc's getaddrinfo_a, polled
 * from a timer so no other thread ever touches a session.
 */
#include "h2/internal.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dc_h2_resolve {
	struct gaicb cb;
	struct addrinfo hints;
	char names[]; /* host, NUL, port, NUL */
};

int dc_h2_resolve_start(const char *host, const char *port, struct dc_h2_resolve **out)
{
	size_t hl = strlen(host), pl = strlen(port);
	struct dc_h2_resolve *r = calloc(1, sizeof(*r) + hl + pl + 2);
	struct gaicb *list[1];
	int rv;

	if (r == NULL)
		return EAI_MEMORY;
	memcpy(r->names, host, hl + 1);
	memcpy(r->names + hl + 1, port, pl + 1);
	r->hints.ai_family = AF_UNSPEC;
	r->hints.ai_socktype = SOCK_STREAM;
	r->hints.ai_flags = AI_NUMERICSERV;
	r->cb.ar_name = r->names;
	r->cb.ar_service = r->names + hl + 1;
	r->cb.ar_request = &r->hints;
	list[0] = &r->cb;
	rv = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (rv != 0) {
		free(r);
		return rv;
	}
	*out = r;
	return 0;
}

int dc_h2_resolve_poll(struct dc_h2_resolve *r, struct addrinfo **ai)
{
	int rv = gai_error(&r->cb);

	if (rv == EAI_INPROGRESS)
		return rv;
	*ai = r->cb.ar_result;
	free(r);
	if (rv != 0) {
		if (*ai != NULL)
			freeaddrinfo(*ai);
		*ai = NULL;
	}
	return rv;
}

void dc_h2_resolve_abandon(struct dc_h2_resolve *r)
{
	const struct gaicb *list[1] = {&r->cb};
	struct timespec wait = {2, 0};

	if (gai_cancel(&r->cb) != EAI_CANCELED && gai_error(&r->cb) == EAI_INPROGRESS) {
		/* The resolver thread still writes to r: wait for it a little ... */
		gai_suspend(list, 1, &wait);
		/* ... and leave it to it if it is stuck (a few bytes, at exit). */
		if (gai_error(&r->cb) == EAI_INPROGRESS)
			return;
	}
	if (r->cb.ar_result != NULL)
		freeaddrinfo(r->cb.ar_result);
	free(r);
}

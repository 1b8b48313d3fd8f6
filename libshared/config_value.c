/* The syntax of configuration values: integers, durations, booleans, choices, URLs. */
#include "config_value.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *trim(const char *s, char *out, size_t sz)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= sz)
		n = sz - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

static bool parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || isspace((unsigned char)*s))
		return false;
	*out = v;
	return true;
}

static bool parse_duration(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	int64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return false;
		v = v * 10 + (*p - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) != 0)
			continue;
		if (v > INT64_MAX / units[i].ms)
			return false;
		*out = v * units[i].ms;
		return true;
	}
	return false;
}

static bool parse_bool(const char *s, int64_t *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return true;
		}
	}
	return false;
}

/* scheme://[user@]host[:port][/rest], no blanks; the scheme is returned lower-cased. */
static bool parse_url(const char *s, char *scheme, size_t sz)
{
	const char *p = s, *host, *end;
	size_t n;

	if (!isalpha((unsigned char)*p))
		return false;
	while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	n = (size_t)(p - s);
	if (strncmp(p, "://", 3) != 0 || n >= sz)
		return false;
	for (size_t i = 0; i < n; i++)
		scheme[i] = (char)tolower((unsigned char)s[i]);
	scheme[n] = '\0';
	host = p + 3;
	end = host + strcspn(host, "/?#");
	for (const char *q = host; *q; q++)
		if (isspace((unsigned char)*q) || iscntrl((unsigned char)*q))
			return false;
	for (const char *q = host; q < end; q++)
		if (*q == '@')
			host = q + 1;
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));

		if (close == NULL || close == host + 1)
			return false;
		p = close + 1;
	} else {
		p = host;
		while (p < end && *p != ':')
			p++;
		if (p == host)
			return false;
		for (const char *q = host; q < p; q++)
			if (!isalnum((unsigned char)*q) && !strchr("-._~%", *q))
				return false;
	}
	if (p < end && *p == ':') {
		long port = 0;
		const char *q = p + 1;

		if (q == end)
			return false;
		for (; q < end; q++) {
			if (!isdigit((unsigned char)*q) || (port = port * 10 + (*q - '0')) > 65535)
				return false;
		}
		if (port == 0)
			return false;
		p = end;
	}
	return p == end;
}

static void join_choices(const char *const *c, char *out, size_t sz)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; c && c[i] && n < sz; i++)
		n += (size_t)snprintf(out + n, sz - n, "%s%s", i ? ", " : "", c[i]);
}

/* Duration bounds as an operator would write them: 10ms, 5s, 1h. */
static void fmt_ms(int64_t ms, char *out, size_t sz)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(out, sz, "%lldh", (long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(out, sz, "%lldm", (long long)(ms / 60000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(out, sz, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, sz, "%lldms", (long long)ms);
}

bool dc_cfg_check_value(const struct dc_cfg_key *k, const char *text, int64_t *num,
			const char **canon, char *msg, size_t msz)
{
	char t[256], scheme[32], list[256], lo[32], hi[32];
	bool ok;

	*num = 0;
	*canon = NULL;
	if (k->type == DC_CFG_STRING)
		return true;
	trim(text, t, sizeof(t));
	switch (k->type) {
	case DC_CFG_INT:
		if (!parse_int(t, num)) {
			snprintf(msg, msz, "expected an integer");
			return false;
		}
		break;
	case DC_CFG_DURATION:
		if (!parse_duration(t, num)) {
			snprintf(msg, msz, "expected a duration such as 500ms, 5s, 2m");
			return false;
		}
		break;
	case DC_CFG_BOOL:
		if (!parse_bool(t, num)) {
			snprintf(msg, msz, "expected true or false");
			return false;
		}
		*canon = *num ? "true" : "false";
		return true;
	case DC_CFG_ENUM:
		for (size_t i = 0; k->choices && k->choices[i]; i++) {
			if (strcasecmp(t, k->choices[i]) == 0) {
				*canon = k->choices[i];
				return true;
			}
		}
		join_choices(k->choices, list, sizeof(list));
		snprintf(msg, msz, "must be one of: %s", list);
		return false;
	case DC_CFG_URL:
		if (!parse_url(t, scheme, sizeof(scheme))) {
			snprintf(msg, msz, "expected a URL such as %s://host:port",
				 k->choices && k->choices[0] ? k->choices[0] : "http");
			return false;
		}
		ok = k->choices == NULL || k->choices[0] == NULL;
		for (size_t i = 0; !ok && k->choices[i]; i++)
			ok = strcmp(scheme, k->choices[i]) == 0;
		if (!ok) {
			join_choices(k->choices, list, sizeof(list));
			snprintf(msg, msz, "URL scheme must be one of: %s", list);
		}
		return ok;
	case DC_CFG_STRING:
		return true;
	}
	if (k->min < k->max && (*num < k->min || *num > k->max)) {
		if (k->type == DC_CFG_DURATION) {
			fmt_ms(k->min, lo, sizeof(lo));
			fmt_ms(k->max, hi, sizeof(hi));
		} else {
			snprintf(lo, sizeof(lo), "%lld", (long long)k->min);
			snprintf(hi, sizeof(hi), "%lld", (long long)k->max);
		}
		snprintf(msg, msz, "must be between %s and %s", lo, hi);
		return false;
	}
	return true;
}

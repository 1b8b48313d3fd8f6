/*
 * The exit-code vocabulary every program shares (sysexits.h values): the
 * supervisor decides a worker's next state from them (worker_fsm.c), and
 * danube-connectctl and the workers end with them.
 */
#ifndef DC_EXIT_CODES_H
#define DC_EXIT_CODES_H

enum dc_exit_code {
	DC_EXIT_OK = 0,           /* done, or stopped on request (drain finished) */
	DC_EXIT_FAILURE = 1,      /* a failure at run time: restart with backoff */
	DC_EXIT_USAGE = 64,       /* bad command line */
	DC_EXIT_DATAERR = 65,     /* bad input data */
	DC_EXIT_UNAVAILABLE = 69, /* a dependency refuses us for good */
	DC_EXIT_SOFTWARE = 70,    /* an internal error */
	DC_EXIT_TEMPFAIL = 75,    /* stopped, but the drain was cut short */
	DC_EXIT_CONFIG = 78,      /* a configuration error: not restarted */
	DC_EXIT_EXEC = 127,       /* a child could not exec its program */
};

#endif

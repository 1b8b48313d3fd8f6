/* The control socket danube-connectctl talks to: nng REP on run_dir/control.sock. */
#ifndef DC_CONTROL_H
#define DC_CONTROL_H

struct dc_supd;
struct dc_control;

/*
 * Listen on ipc://RUN_DIR/control.sock (mode 0600), taking requests of at
 * most 4096 bytes on at most 64 connections at once. Returns 0 or a
 * negative errno.
 */
int dc_control_open(struct dc_control **out, struct dc_supd *sup);
void dc_control_close(struct dc_control *c);

#endif

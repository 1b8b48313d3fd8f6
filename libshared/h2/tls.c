/*
 * TLS for a gRPC session: the OpenSSL context and handshake (CA, host
 * check, ALPN h2) and reads and writes on the TLS socket.
 */
#include "h2/internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static void ssl_reason(char *out, size_t len, int ssl_err)
{
	unsigned long e = ERR_get_error();

	if (e != 0) {
		ERR_error_string_n(e, out, len);
		ERR_clear_error();
	} else if (ssl_err == SSL_ERROR_SYSCALL && errno != 0) {
		snprintf(out, len, "%s", strerror(errno));
	} else {
		snprintf(out, len, "the server closed the connection");
	}
}

int dc_h2_tls_start(struct dc_h2_sess *s, char *err, size_t errlen)
{
	struct dc_grpc_conn *conn = s->conn;
	static const unsigned char alpn[] = {2, 'h', '2'};
	char reason[160];
	int ok;

	ERR_clear_error();
	s->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (s->ssl_ctx == NULL)
		goto ssl_error;
	SSL_CTX_set_min_proto_version(s->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(s->ssl_ctx, SSL_VERIFY_PEER, NULL);
	if (conn->tls_ca != NULL && conn->tls_ca[0]) {
		if (SSL_CTX_load_verify_locations(s->ssl_ctx, conn->tls_ca, NULL) != 1) {
			ssl_reason(reason, sizeof(reason), SSL_ERROR_SSL);
			snprintf(err, errlen, "TLS to %s: cannot load CA file %s: %s",
				 conn->authority, conn->tls_ca, reason);
			return -EINVAL;
		}
	} else if (SSL_CTX_set_default_verify_paths(s->ssl_ctx) != 1) {
		goto ssl_error;
	}
	/* SSL_CTX_set_alpn_protos returns 0 on success. */
	if (SSL_CTX_set_alpn_protos(s->ssl_ctx, alpn, sizeof(alpn)) != 0)
		goto ssl_error;
	s->ssl = SSL_new(s->ssl_ctx);
	if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
		goto ssl_error;
	SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (conn->host_is_ip) {
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), conn->host);
	} else {
		ok = SSL_set_tlsext_host_name(s->ssl, conn->host) == 1 &&
		     SSL_set1_host(s->ssl, conn->host) == 1;
	}
	if (!ok)
		goto ssl_error;
	s->phase = DC_H2_TLS_HANDSHAKE;
	return 0;

ssl_error:
	ssl_reason(reason, sizeof(reason), SSL_ERROR_SSL);
	snprintf(err, errlen, "TLS to %s: %s", conn->authority, reason);
	return -EPROTO;
}

enum dc_h2_tls_step dc_h2_tls_handshake(struct dc_h2_sess *s, char *err, size_t errlen)
{
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	char reason[160];
	long vr;
	int r, e;

	ERR_clear_error();
	errno = 0;
	r = SSL_connect(s->ssl);
	if (r == 1) {
		SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_len);
		if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
			snprintf(err, errlen,
				 "TLS connection to %s: the server does not speak HTTP/2 "
				 "(ALPN h2 not selected)",
				 s->conn->authority);
			return DC_H2_TLS_FAILED;
		}
		return DC_H2_TLS_DONE;
	}
	e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return DC_H2_TLS_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return DC_H2_TLS_WANT_WRITE;
	vr = SSL_get_verify_result(s->ssl);
	if (vr != X509_V_OK)
		snprintf(reason, sizeof(reason), "certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
	else
		ssl_reason(reason, sizeof(reason), e);
	snprintf(err, errlen, "TLS handshake with %s failed: %s", s->conn->authority, reason);
	return DC_H2_TLS_FAILED;
}

ssize_t dc_h2_tls_read(struct dc_h2_sess *s, uint8_t *buf, size_t len, char *err, size_t errlen)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_read(s->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));

	if (r > 0)
		return r;
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 && ERR_peek_error() == 0)
			return 0;
		/* fall through */
	default:
		ssl_reason(err, errlen, SSL_ERROR_SYSCALL);
		return -EIO;
	}
}

ssize_t dc_h2_tls_write(struct dc_h2_sess *s, const uint8_t *buf, size_t len, char *err,
			size_t errlen)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_write(s->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	int e;

	if (r > 0)
		return r;
	e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	/* Retried after the next read, which the read watcher brings. */
	if (e == SSL_ERROR_WANT_READ)
		return -EINPROGRESS;
	ssl_reason(err, errlen, e);
	return -EIO;
}

void dc_h2_tls_close(struct dc_h2_sess *s)
{
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->ssl_ctx != NULL) {
		SSL_CTX_free(s->ssl_ctx);
		s->ssl_ctx = NULL;
	}
}

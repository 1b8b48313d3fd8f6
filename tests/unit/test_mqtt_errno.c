/* The MQTT adapter's error vocabulary: libmosquitto's MOSQ_ERR_* as -errno (mqtt/client.c). */
#include "harness.h"
#include "mqtt/client.h"

#include <errno.h>
#include <mosquitto.h>

START_TEST(success_is_zero)
{
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_SUCCESS, EIO), 0);
}
END_TEST

START_TEST(what_callers_decide_on_has_its_own_errno)
{
	/* sink-mqtt retries these two and keeps QoS > 0 messages without a connection. */
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_NO_CONN, 0), -ENOTCONN);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_NOMEM, 0), -ENOMEM);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_INVAL, 0), -EINVAL);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_PAYLOAD_SIZE, 0), -EMSGSIZE);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_OVERSIZE_PACKET, 0), -EMSGSIZE);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_CONN_LOST, 0), -ECONNRESET);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_CONN_REFUSED, 0), -ECONNREFUSED);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_AUTH, 0), -EACCES);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_ACL_DENIED, 0), -EACCES);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_PROTOCOL, 0), -EPROTO);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_EAI, 0), -EHOSTUNREACH);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_KEEPALIVE, 0), -ETIMEDOUT);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_NOT_SUPPORTED, 0), -ENOTSUP);
}
END_TEST

START_TEST(errno_result_carries_the_system_errno)
{
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_ERRNO, ECONNREFUSED), -ECONNREFUSED);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_ERRNO, EPIPE), -EPIPE);
	/* errno was not set: still a failure. */
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_ERRNO, 0), -EIO);
}
END_TEST

START_TEST(every_failure_is_a_negative_errno)
{
	for (int rc = MOSQ_ERR_NOMEM; rc <= MOSQ_ERR_ALREADY_EXISTS + 10; rc++) {
		int e = dc_mqtt_errno(rc, 0);

		ck_assert_msg(e < 0 && e > -4096, "MOSQ_ERR %d -> %d", rc, e);
	}
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_TLS, 0), -EIO);
	ck_assert_int_eq(dc_mqtt_errno(MOSQ_ERR_UNKNOWN, 0), -EIO);
}
END_TEST

static int new_fails_with(const struct dc_mqtt_opts *o)
{
	struct dc_mqtt_cbs cbs = {0};
	struct dc_mqtt *m = NULL;
	char err[128] = "";
	int rc = dc_mqtt_new(NULL, o, &cbs, NULL, &m, err, sizeof(err));

	ck_assert_ptr_null(m);
	ck_assert_msg(err[0] != '\0', "no reason given for %d", rc);
	return rc;
}

START_TEST(bad_options_are_einval_with_a_reason)
{
	struct dc_mqtt_opts o = {.host = "127.0.0.1",
				 .port = 1883,
				 .client_id = "t",
				 .keepalive_s = 30,
				 .protocol = 4};

	o.tls_cert = "c.pem";
	o.tls_key = "k.pem";
	ck_assert_int_eq(new_fails_with(&o), -EINVAL); /* no tls_ca */
	o.tls_ca = "ca.pem";
	o.tls_key = NULL;
	ck_assert_int_eq(new_fails_with(&o), -EINVAL); /* a cert without its key */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("mqtt_errno");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, success_is_zero);
	tcase_add_test(tc, what_callers_decide_on_has_its_own_errno);
	tcase_add_test(tc, errno_result_carries_the_system_errno);
	tcase_add_test(tc, every_failure_is_a_negative_errno);
	tcase_add_test(tc, bad_options_are_einval_with_a_reason);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)

/*
 * Schema-registry calls (register, latest of a subject, one version by id),
 * always on the service URL: the registry is cluster-wide.
 */
#include "danube/internal.h"
#include "h2/grpc.h"

#include "danube/SchemaRegistry.pb.h"

#include <string.h>

static void schema_done(void *arg, int code, const char *message, void *resp, const char *what)
{
	struct dn_op *op = arg;
	char err[DN_ERRLEN];

	op->rpc = NULL;
	dn_op_detach(op);
	if (code != DN_OK) {
		dn_error_format(err, sizeof(err), code, message, "schema %s: %s failed", op->name,
				what);
		op->cb.schema(op->arg, code, err, NULL);
	} else {
		op->cb.schema(op->arg, DN_OK, "", resp);
	}
	dn_op_free(op);
}

static void get_done(void *arg, int code, const char *message, void *resp)
{
	const danube_schema_GetSchemaResponse *gr = resp;
	struct dn_schema s = {0};

	if (gr != NULL) {
		s.id = gr->schema_id;
		s.version = gr->version;
		s.subject = gr->subject ? gr->subject : "";
		s.type = gr->schema_type ? gr->schema_type : "";
		if (gr->schema_definition != NULL) {
			s.definition = gr->schema_definition->bytes;
			s.definition_len = gr->schema_definition->size;
		}
		s.fingerprint = gr->fingerprint ? gr->fingerprint : "";
		s.compatibility_mode = gr->compatibility_mode ? gr->compatibility_mode : "";
	}
	schema_done(arg, code, message, gr ? &s : NULL, "fetching");
}

static void register_done(void *arg, int code, const char *message, void *resp)
{
	const danube_schema_RegisterSchemaResponse *rr = resp;
	struct dn_op *op = arg;
	struct dn_schema s = {0};

	if (rr != NULL) {
		s.id = rr->schema_id;
		s.version = rr->version;
		s.is_new_version = rr->is_new_version;
		s.subject = op->name;
		s.type = "";
		s.fingerprint = rr->fingerprint ? rr->fingerprint : "";
		s.compatibility_mode = "";
	}
	schema_done(arg, code, message, rr ? &s : NULL, "registering");
}

static int start(struct dn_client *c, struct dn_op *op, struct dn_op **out, const char *path,
		 const pb_msgdesc_t *req_fields, const void *req, const pb_msgdesc_t *resp_fields,
		 size_t resp_size, dn_rpc_fn cb)
{
	struct dc_grpc_conn *conn;
	int err = dn_client_conn(c, c->service_url, &conn);

	if (err == 0)
		err = dn_rpc_start(c, conn, path, NULL, req_fields, req, resp_fields, resp_size,
				   DN_CONTROL_DEADLINE_MS, cb, op, &op->rpc);
	if (err != 0) {
		if (out != NULL)
			*out = NULL;
		dn_op_free(op);
	}
	return err;
}

int dn_schema_register(struct dn_client *c, const char *subject, const char *type,
		       const void *definition, size_t len, dn_schema_fn cb, void *arg)
{
	danube_schema_RegisterSchemaRequest req = danube_schema_RegisterSchemaRequest_init_zero;
	struct dn_op *op;
	pb_bytes_array_t *def;
	int err;

	if (subject == NULL || type == NULL || (definition == NULL && len > 0) || cb == NULL)
		return -EINVAL;
	def = malloc(PB_BYTES_ARRAY_T_ALLOCSIZE(len));
	if (def == NULL)
		return -ENOMEM;
	def->size = (pb_size_t)len;
	if (len > 0)
		memcpy(def->bytes, definition, len);
	op = dn_op_new(c, subject, NULL);
	if (op == NULL) {
		free(def);
		return -ENOMEM;
	}
	op->cb.schema = cb;
	op->arg = arg;
	req.subject = (char *)subject;
	req.schema_type = (char *)type;
	req.schema_definition = def;
	req.created_by = "danube-connect";
	err = start(c, op, NULL, DN_PATH_SCHEMA_REGISTER,
		    danube_schema_RegisterSchemaRequest_fields, &req,
		    danube_schema_RegisterSchemaResponse_fields,
		    sizeof(danube_schema_RegisterSchemaResponse), register_done);
	free(def);
	return err;
}

int dn_schema_latest_op(struct dn_client *c, const char *subject, dn_schema_fn cb, void *arg,
			struct dn_op **out)
{
	danube_schema_GetLatestSchemaRequest req = danube_schema_GetLatestSchemaRequest_init_zero;
	struct dn_op *op;

	if (subject == NULL || cb == NULL)
		return -EINVAL;
	op = dn_op_new(c, subject, out);
	if (op == NULL)
		return -ENOMEM;
	op->cb.schema = cb;
	op->arg = arg;
	req.subject = (char *)subject;
	return start(c, op, out, DN_PATH_SCHEMA_LATEST, danube_schema_GetLatestSchemaRequest_fields,
		     &req, danube_schema_GetSchemaResponse_fields,
		     sizeof(danube_schema_GetSchemaResponse), get_done);
}

int dn_schema_get_latest(struct dn_client *c, const char *subject, dn_schema_fn cb, void *arg)
{
	return dn_schema_latest_op(c, subject, cb, arg, NULL);
}

int dn_schema_get(struct dn_client *c, uint64_t id, uint32_t version, dn_schema_fn cb, void *arg)
{
	danube_schema_GetSchemaRequest req = danube_schema_GetSchemaRequest_init_zero;
	char name[32];
	struct dn_op *op;

	if (cb == NULL)
		return -EINVAL;
	snprintf(name, sizeof(name), "id %llu", (unsigned long long)id);
	op = dn_op_new(c, name, NULL);
	if (op == NULL)
		return -ENOMEM;
	op->cb.schema = cb;
	op->arg = arg;
	req.schema_id = id;
	req.has_version = version != 0;
	req.version = version;
	return start(c, op, NULL, DN_PATH_SCHEMA_GET, danube_schema_GetSchemaRequest_fields, &req,
		     danube_schema_GetSchemaResponse_fields,
		     sizeof(danube_schema_GetSchemaResponse), get_done);
}

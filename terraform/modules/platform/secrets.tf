# Service secrets. Source of truth is Secrets Manager (KMS-encrypted); the same values are mirrored into
# Kubernetes secrets (etcd envelope-encrypted with the cluster's KMS key) that pods mount as files, which is
# how the services read them (ALTCHA_HMAC_KEY_FILE, MQTT_PASSWORD_FILE, REDIS_PASSWORD_FILE, CQL_PASSWORD_FILE;
# CQL_TLS_CA_FILE is the ScyllaDB CA certificate, not a secret, mounted from the same volume for simplicity).

# Rotation without Lambda (no serverless in this system): a time_rotating resource expires every 90 days, and
# the generated values that name it in `keepers` are replaced at the next apply after that; Secrets Manager,
# the Kubernetes secrets and EMQX's bootstrap follow in the same apply, and the pods pick the new files up on
# their rolling restart. The runbook says when (never on a show day) and what each rotation costs:
#   altcha key      proofs of work issued under the old key (5 min TTL) fail once: the SDK asks again
#   MQTT publisher  EMQX reads its bootstrap only into an empty user table: rotate with a rolling EMQX restart
# Redis AUTH (modules/redis, ROTATE strategy) and the CQL password (ALTER ROLE by the operator) have their own
# steps in the runbook. checkov's CKV2_AWS_57 wants a Secrets Manager rotation Lambda: skipped with this reason.
resource "time_rotating" "service_secrets" {
  rotation_days = 90
}

resource "random_id" "altcha" {
  byte_length = 32
  keepers     = { rotation = time_rotating.service_secrets.id }
}

resource "aws_secretsmanager_secret" "altcha" {
  name       = "${var.name}/ingest/altcha-hmac-key"
  kms_key_id = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "altcha" {
  secret_id     = aws_secretsmanager_secret.altcha.id
  secret_string = random_id.altcha.hex
}

resource "random_password" "mqtt_projections" {
  length  = 40
  special = false
  keepers = { rotation = time_rotating.service_secrets.id }
}

resource "aws_secretsmanager_secret" "mqtt_projections" {
  name       = "${var.name}/projections/mqtt-password"
  kms_key_id = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "mqtt_projections" {
  secret_id     = aws_secretsmanager_secret.mqtt_projections.id
  secret_string = random_password.mqtt_projections.result
}

data "aws_secretsmanager_secret_version" "redis_auth" {
  secret_id = var.redis_auth_secret_arn
}

data "aws_secretsmanager_secret_version" "cql" {
  secret_id = var.cql_secret_arn
}

data "aws_secretsmanager_secret_version" "apicurio" {
  secret_id = var.apicurio_secret_arn
}

resource "kubernetes_namespace_v1" "votestream" {
  metadata {
    name = "votestream"
    labels = {
      "pod-security.kubernetes.io/enforce" = "restricted"
    }
  }
}

resource "kubernetes_namespace_v1" "emqx" {
  metadata {
    name = "emqx"
  }
}

# EMQX dashboard admin (the chart's default password is `public`; the dashboard is not exposed outside the
# cluster, operators reach it with kubectl port-forward).
resource "random_password" "emqx_dashboard" {
  length  = 32
  special = false
  keepers = { rotation = time_rotating.service_secrets.id }
}

resource "aws_secretsmanager_secret" "emqx_dashboard" {
  name       = "${var.name}/emqx/dashboard-admin"
  kms_key_id = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "emqx_dashboard" {
  secret_id     = aws_secretsmanager_secret.emqx_dashboard.id
  secret_string = random_password.emqx_dashboard.result
}

data "aws_secretsmanager_secret_version" "emqx_license" {
  count     = var.emqx_license_secret_arn == null ? 0 : 1
  secret_id = var.emqx_license_secret_arn
}

resource "kubernetes_secret_v1" "emqx_env" {
  metadata {
    name      = "emqx-env"
    namespace = kubernetes_namespace_v1.emqx.metadata[0].name
  }
  data = merge(
    { EMQX_DASHBOARD__DEFAULT_PASSWORD = random_password.emqx_dashboard.result },
    var.emqx_license_secret_arn == null ? {} : { EMQX_LICENSE__KEY = data.aws_secretsmanager_secret_version.emqx_license[0].secret_string },
  )
}

resource "kubernetes_secret_v1" "ingest" {
  metadata {
    name      = "ingest"
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  }
  data = {
    "altcha-hmac.key"  = random_id.altcha.hex
    "redis-auth.token" = data.aws_secretsmanager_secret_version.redis_auth.secret_string
    "cql.password"     = data.aws_secretsmanager_secret_version.cql.secret_string
    "scylla-ca.crt"    = var.cql_ca_cert_pem
  }
}

# The stream processors and the migration job need only CQL's password and CA.
resource "kubernetes_secret_v1" "stream" {
  metadata {
    name      = "stream"
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  }
  data = {
    "cql.password"  = data.aws_secretsmanager_secret_version.cql.secret_string
    "scylla-ca.crt" = var.cql_ca_cert_pem
  }
}

resource "kubernetes_secret_v1" "projections" {
  metadata {
    name      = "projections"
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  }
  data = {
    "mqtt-projections.password" = random_password.mqtt_projections.result
    "redis-auth.token"          = data.aws_secretsmanager_secret_version.redis_auth.secret_string
    "cql.password"              = data.aws_secretsmanager_secret_version.cql.secret_string
    "scylla-ca.crt"             = var.cql_ca_cert_pem
  }
}

resource "kubernetes_secret_v1" "emqx" {
  metadata {
    name      = "emqx-projections-user"
    namespace = kubernetes_namespace_v1.emqx.metadata[0].name
  }
  data = {
    password = random_password.mqtt_projections.result
  }
}

resource "kubernetes_secret_v1" "apicurio" {
  metadata {
    name      = "apicurio-kafka"
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  }
  data = {
    "sasl.jaas.config" = "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"${jsondecode(data.aws_secretsmanager_secret_version.apicurio.secret_string).username}\" password=\"${jsondecode(data.aws_secretsmanager_secret_version.apicurio.secret_string).password}\";"
  }
}

resource "kubernetes_service_account_v1" "service" {
  for_each = module.service_role
  metadata {
    name      = each.key
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
    annotations = {
      "eks.amazonaws.com/role-arn" = each.value.role_arn
    }
  }
}

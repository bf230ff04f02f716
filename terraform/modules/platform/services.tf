# The votestream workloads (ingest, stream-dedupe, stream-tally, projections, Apicurio Registry and the init
# Job: topics, schemas, CQL migrations) are the Helm chart deploy/helm/votestream, installed here with the
# values of this module's variables. Operators can review, diff (helm diff) and roll back (helm rollback) a
# release like any other chart; the chart's README-level docs are in docs/architecture.md "Deployment".
# The namespace (restricted Pod Security level), the service accounts (IRSA) and the Secrets mounted as
# SECRETS_DIR come from secrets.tf; the ALB target groups bind to the `app: ingest|projections` pods (emqx.tf).

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  image_parts = regex("^(?P<repository>.+):(?P<tag>[^:/]+)$", var.image)

  # What loadCommonConfig (libs/runtime/src/config.ts) reads; secret files are under SECRETS_DIR=/secrets.
  common_env = {
    # MSK: TLS + IAM (SASL/OAUTHBEARER, tokens signed with the pod's IRSA credentials in AWS_REGION).
    KAFKA_BROKERS        = var.kafka_brokers_iam
    KAFKA_SSL            = "true"
    KAFKA_SASL_MECHANISM = "aws-msk-iam"
    AWS_REGION           = var.region
    SCHEMA_REGISTRY_URL  = "http://apicurio.votestream.svc.cluster.local:8080/apis/ccompat/v7"
    TOPIC_PREFIX         = var.topic_prefix
    # ScyllaDB: client TLS verified against the module's CA, PasswordAuthenticator (SECRETS_DIR/cql.password).
    CQL_CONTACT_POINTS = join(",", var.cql_contact_points)
    CQL_LOCAL_DC       = var.cql_datacenter
    CQL_KEYSPACE       = var.cql_keyspace
    CQL_TLS            = "true"
    CQL_TLS_CA_FILE    = "/secrets/scylla-ca.crt"
    CQL_USERNAME       = var.cql_username
    # ElastiCache cluster mode over TLS (only ingest and projections connect to it).
    REDIS_URL    = "rediss://${var.redis_endpoint}:6379"
    REDIS_PREFIX = "vs:"
    LOG_LEVEL    = "info"
  }

  # KEDA (lag-based autoscaling of stream and projections) and the Prometheus Operator (ServiceMonitors) are
  # cluster add-ons: switch these on once they are installed (the chart's objects need their CRDs).
  keda_enabled             = false
  service_monitors_enabled = false

  chart_values = {
    image     = { repository = local.image_parts.repository, tag = local.image_parts.tag }
    commonEnv = local.common_env
    # The AUTH token file and cluster mode, for the workloads that use Redis.
    redisEnv = { REDIS_CLUSTER = "true", REDIS_PASSWORD_FILE = "redis-auth.token" }
    network  = { vpcCidr = data.aws_vpc.this.cidr_block, monitoringNamespace = "monitoring", networkPolicies = true }
    workloads = {
      ingest = {
        replicas = var.replicas.ingest
        env = {
          INGEST_PORT           = "8080"
          INGEST_METRICS_PORT   = "9471"
          CLIENT_ADDRESS_SOURCE = var.client_address_source
          TRUST_PROXY_HOPS      = tostring(var.trust_proxy_hops) # the ALB appends the client address to X-Forwarded-For
          # Only the ALB (in the VPC's public subnets) may name the client address.
          TRUSTED_PROXY_CIDRS = data.aws_vpc.this.cidr_block
          JWT_JWKS_URL        = var.jwt_jwks_url
          JWT_ISSUER          = var.jwt_issuer
          JWT_AUDIENCE        = var.jwt_audience
          # While Redis is down each pod allows only its share of the fleet's rate budgets (the HPA maximum).
          RATE_FALLBACK_FLEET_SIZE = tostring(var.replicas.ingest * 2)
          CHALLENGE_POLICY         = "required"
        }
      }
      # Stage 1: dedupe tasks, one per votes partition; pods share them through the consumer group.
      stream-dedupe = {
        replicas = var.replicas.stream - 3
        env = {
          STREAM_STAGES                = "dedupe,analytics"
          STREAM_APPLICATION_ID        = var.stream_application_id
          STREAM_CHANGELOG_REPLICATION = "3"
          STREAM_METRICS_PORT          = "9470"
        }
      }
      # Stage 2 (global tally) and the CQL tally sink: few records, one pod per zone.
      stream-tally = {
        replicas = 3
        env = {
          STREAM_STAGES                = "tally,sink"
          STREAM_APPLICATION_ID        = var.stream_application_id
          STREAM_CHANGELOG_REPLICATION = "3"
          STREAM_METRICS_PORT          = "9470"
        }
      }
      projections = {
        replicas = var.replicas.projections
        env = {
          HTTP_PORT                = "8090"
          PROJECTIONS_METRICS_PORT = "9472"
          PROJECTIONS_GROUP_ID     = "${var.topic_prefix}projections"
          MQTT_URL                 = local.mqtt_publisher_url
          MQTT_USERNAME            = "projections"
          LIVE_MQTT_WS_URL         = var.mqtt_public_ws_url
          LIVE_API_URL             = var.api_public_url
          # 2 messages per poll per topic per second, not the code's default 10: the fan-out to tens of millions
          # of subscribers is the largest byte stream of the system (docs/capacity.md, MQTT).
          LIVE_MESSAGES_PER_POLL_PER_SECOND_MAX = "2"
        }
      }
    }
    ingestAutoscaling = {
      enabled     = true
      minReplicas = max(3, floor(var.replicas.ingest / 3))
      maxReplicas = var.replicas.ingest * 2
    }
    keda = {
      enabled = local.keda_enabled
      kafka   = { bootstrapServers = var.kafka_brokers_iam, tls = "enable", sasl = "aws_msk_iam", awsRegion = var.region }
    }
    serviceMonitor = { enabled = local.service_monitors_enabled }
    # Topics belong to modules/kafka-topics (replication factor 3, production partition counts).
    init = {
      topics = false
      env    = { CQL_REPLICATION = var.cql_replication }
    }
    apicurio = {
      kafkaBootstrapServers = var.kafka_brokers_scram
      kafkaSecurityProtocol = "SASL_SSL"
      kafkaSaslMechanism    = "SCRAM-SHA-512"
      jaasSecretName        = kubernetes_secret_v1.apicurio.metadata[0].name
    }
  }
}

resource "helm_release" "votestream" {
  name      = "votestream"
  namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  chart     = "${path.module}/../../../deploy/helm/votestream"
  values    = [yamlencode(local.chart_values)]

  # Wait for the Deployments to be ready and the init Job to complete; a failed release rolls back by itself.
  wait            = true
  wait_for_jobs   = true
  atomic          = true
  timeout         = 900
  cleanup_on_fail = true

  depends_on = [
    kubernetes_service_account_v1.service,
    kubernetes_secret_v1.ingest,
    kubernetes_secret_v1.stream,
    kubernetes_secret_v1.projections,
    kubernetes_secret_v1.apicurio,
    helm_release.aws_load_balancer_controller,
  ]
}

# The three votestream deployables, each on its own node group (nodeSelector + toleration on the pool taint),
# spread over the 3 zones. One image, three commands (compose/docker-compose.yml runs the same commands).

locals {
  # What loadCommonConfig (libs/runtime/src/config.ts) reads. Files are under /secrets, the pod's secret volume.
  common_env = {
    # MSK: TLS + IAM (SASL/OAUTHBEARER, tokens signed with the pod's IRSA credentials in AWS_REGION).
    KAFKA_BROKERS        = var.kafka_brokers_iam
    KAFKA_SSL            = "true"
    KAFKA_SASL_MECHANISM = "aws-msk-iam"
    AWS_REGION           = var.region
    SCHEMA_REGISTRY_URL  = "http://apicurio.votestream.svc.cluster.local:8080/apis/ccompat/v7"
    TOPIC_PREFIX         = var.topic_prefix
    # ScyllaDB: client TLS verified against the module's CA, PasswordAuthenticator.
    CQL_CONTACT_POINTS = join(",", var.cql_contact_points)
    CQL_LOCAL_DC       = var.cql_datacenter
    CQL_KEYSPACE       = var.cql_keyspace
    CQL_TLS            = "true"
    CQL_TLS_CA_FILE    = "/secrets/scylla-ca.crt"
    CQL_USERNAME       = var.cql_username
    CQL_PASSWORD_FILE  = "/secrets/cql.password"
    REDIS_PREFIX       = "vs:"
    LOG_LEVEL          = "info"
  }
  # ElastiCache cluster mode over TLS with the AUTH token; only ingest and projections use Redis (the stream's
  # config would read REDIS_PASSWORD_FILE too, and it has no such file).
  redis_env = {
    REDIS_URL           = "rediss://${var.redis_endpoint}:6379"
    REDIS_CLUSTER       = "true"
    REDIS_PASSWORD_FILE = "/secrets/redis-auth.token"
  }

  deployables = {
    ingest = {
      pool     = "ingest"
      account  = "ingest"
      replicas = var.replicas.ingest
      command  = ["node", "--import", "tsx", "ingest/src/main.ts"]
      port     = 8080
      probe    = "/readyz"
      cpu      = "1800m"
      memory   = "2Gi"
      secret   = "ingest"
      env = merge(local.redis_env, {
        INGEST_PORT          = "8080"
        TRUST_PROXY_HOPS     = "1" # the ALB appends the client address to X-Forwarded-For
        JWT_JWKS_URL         = var.jwt_jwks_url
        ALTCHA_HMAC_KEY_FILE = "/secrets/altcha-hmac.key"
        CHALLENGE_POLICY     = "required"
      })
    }
    # Stage 1: dedupe tasks, one per votes partition; pods share them through the consumer group.
    stream-dedupe = {
      pool     = "stream"
      account  = "stream"
      replicas = var.replicas.stream - 3
      command  = ["node", "--import", "tsx", "stream/src/main.ts"]
      port     = 9470
      probe    = "/health"
      cpu      = "1800m"
      memory   = "6Gi" # dedupe state of its tasks, see docs/capacity.md
      secret   = "stream"
      env = {
        STREAM_STAGES                = "dedupe"
        STREAM_APPLICATION_ID        = var.stream_application_id
        STREAM_CHANGELOG_REPLICATION = "3"
        STREAM_METRICS_PORT          = "9470"
      }
    }
    # Stage 2 (global tally) and the CQL tally sink: few records, one pod per zone.
    stream-tally = {
      pool     = "stream"
      account  = "stream"
      replicas = 3
      command  = ["node", "--import", "tsx", "stream/src/main.ts"]
      port     = 9470
      probe    = "/health"
      cpu      = "1000m"
      memory   = "1Gi"
      secret   = "stream"
      env = {
        STREAM_STAGES                = "tally,sink"
        STREAM_APPLICATION_ID        = var.stream_application_id
        STREAM_CHANGELOG_REPLICATION = "3"
        STREAM_METRICS_PORT          = "9470"
      }
    }
    projections = {
      pool     = "projections"
      account  = "projections"
      replicas = var.replicas.projections
      command  = ["node", "--import", "tsx", "projections/src/main.ts"]
      port     = 8090
      probe    = "/health"
      cpu      = "1800m"
      memory   = "2Gi"
      secret   = "projections"
      env = merge(local.redis_env, {
        HTTP_PORT          = "8090"
        MQTT_URL           = "mqtt://emqx.emqx.svc.cluster.local:1883"
        MQTT_USERNAME      = "projections"
        MQTT_PASSWORD_FILE = "/secrets/mqtt-projections.password"
        LIVE_MQTT_WS_URL   = var.mqtt_public_ws_url
        LIVE_API_URL       = var.api_public_url
        # 2 messages per poll per topic per second, not the code's default 10: the fan-out to tens of millions
        # of subscribers is the largest byte stream of the system (docs/capacity.md, MQTT).
        LIVE_MESSAGES_PER_POLL_PER_SECOND_MAX = "2"
      })
    }
  }
}

resource "kubernetes_deployment_v1" "service" {
  for_each = local.deployables

  metadata {
    name      = each.key
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
    labels    = { app = each.key }
  }

  spec {
    replicas = each.value.replicas

    selector {
      match_labels = { app = each.key }
    }

    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_unavailable = "10%"
        max_surge       = "10%"
      }
    }

    template {
      metadata {
        labels = { app = each.key }
        annotations = {
          "prometheus.io/scrape" = "true"
          "prometheus.io/port"   = tostring(each.value.port)
          "prometheus.io/path"   = "/metrics"
        }
      }

      spec {
        service_account_name             = each.value.account
        termination_grace_period_seconds = 45
        node_selector                    = { "votestream.io/pool" = each.value.pool }

        toleration {
          key      = "votestream.io/pool"
          operator = "Equal"
          value    = each.value.pool
          effect   = "NoSchedule"
        }

        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "topology.kubernetes.io/zone"
          when_unsatisfiable = "DoNotSchedule"
          label_selector {
            match_labels = { app = each.key }
          }
        }

        security_context {
          run_as_non_root = true
          run_as_user     = 1000
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name    = each.key
          image   = var.image
          command = each.value.command

          port {
            container_port = each.value.port
          }

          dynamic "env" {
            for_each = merge(local.common_env, each.value.env)
            content {
              name  = env.key
              value = env.value
            }
          }

          resources {
            requests = { cpu = each.value.cpu, memory = each.value.memory }
            limits   = { memory = each.value.memory }
          }

          readiness_probe {
            http_get {
              path = each.value.probe
              port = each.value.port
            }
            period_seconds = 5
          }

          liveness_probe {
            http_get {
              path = each.value.probe
              port = each.value.port
            }
            period_seconds    = 10
            failure_threshold = 6
          }

          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }

          dynamic "volume_mount" {
            for_each = each.value.secret != "" ? [1] : []
            content {
              name       = "secrets"
              mount_path = "/secrets"
              read_only  = true
            }
          }
        }

        dynamic "volume" {
          for_each = each.value.secret != "" ? [1] : []
          content {
            name = "secrets"
            secret {
              secret_name = each.value.secret
            }
          }
        }
      }
    }
  }

  depends_on = [kubernetes_job_v1.migrate]
}

resource "kubernetes_pod_disruption_budget_v1" "service" {
  for_each = local.deployables
  metadata {
    name      = each.key
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  }
  spec {
    max_unavailable = "10%"
    selector {
      match_labels = { app = each.key }
    }
  }
}

# Ingest scales on CPU; stream does not autoscale past its partition count (tasks = partitions).
resource "kubernetes_horizontal_pod_autoscaler_v2" "ingest" {
  metadata {
    name      = "ingest"
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  }
  spec {
    min_replicas = max(3, floor(var.replicas.ingest / 3))
    max_replicas = var.replicas.ingest * 2
    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = "ingest"
    }
    metric {
      type = "Resource"
      resource {
        name = "cpu"
        target {
          type                = "Utilization"
          average_utilization = 60
        }
      }
    }
  }
}

# CQL schema: `npm run migrate` once per release, before the services roll (idempotent; see migrations/cql).
resource "kubernetes_job_v1" "migrate" {
  metadata {
    name      = "cql-migrate"
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  }
  spec {
    backoff_limit = 6
    template {
      metadata {
        labels = { app = "cql-migrate" }
      }
      spec {
        restart_policy = "OnFailure"
        node_selector  = { "votestream.io/pool" = "platform" }
        container {
          name    = "migrate"
          image   = var.image
          command = ["npm", "run", "migrate"]
          dynamic "env" {
            for_each = merge(local.common_env, { CQL_REPLICATION = var.cql_replication })
            content {
              name  = env.key
              value = env.value
            }
          }
          volume_mount {
            name       = "secrets"
            mount_path = "/secrets"
            read_only  = true
          }
        }
        # CQL_PASSWORD_FILE and CQL_TLS_CA_FILE (same CQL role as the services).
        volume {
          name = "secrets"
          secret {
            secret_name = kubernetes_secret_v1.stream.metadata[0].name
          }
        }
      }
    }
  }
  wait_for_completion = true
  timeouts {
    create = "10m"
  }
}

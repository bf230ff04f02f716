# Apicurio Registry 3 (Confluent-compatible API at /apis/ccompat/v7) with KafkaSQL storage on MSK: the
# registry's state is a Kafka topic, so it is as durable as the votes and needs no database of its own.
# Three replicas, one per zone; each replays the journal topic at start. SCRAM over TLS to MSK.
# The compatibility rule (FULL_TRANSITIVE) is set per subject by the schemas workflow (schemas/src/workflow.ts).

resource "kubernetes_deployment_v1" "apicurio" {
  metadata {
    name      = "apicurio"
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
    labels    = { app = "apicurio" }
  }
  spec {
    replicas = 3
    selector {
      match_labels = { app = "apicurio" }
    }
    template {
      metadata {
        labels = { app = "apicurio" }
      }
      spec {
        node_selector = { "votestream.io/pool" = "platform" }
        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "topology.kubernetes.io/zone"
          when_unsatisfiable = "DoNotSchedule"
          label_selector {
            match_labels = { app = "apicurio" }
          }
        }
        container {
          name  = "apicurio"
          image = "quay.io/apicurio/apicurio-registry:3.3.3"
          port {
            container_port = 8080
          }
          env {
            name  = "APICURIO_STORAGE_KIND"
            value = "kafkasql"
          }
          env {
            name  = "APICURIO_KAFKASQL_BOOTSTRAP_SERVERS"
            value = var.kafka_brokers_scram
          }
          env {
            name  = "APICURIO_KAFKA_COMMON_SECURITY_PROTOCOL"
            value = "SASL_SSL"
          }
          env {
            name  = "APICURIO_KAFKA_COMMON_SASL_MECHANISM"
            value = "SCRAM-SHA-512"
          }
          env {
            name = "APICURIO_KAFKA_COMMON_SASL_JAAS_CONFIG"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.apicurio.metadata[0].name
                key  = "sasl.jaas.config"
              }
            }
          }
          # Writes to the registry come from the schemas workflow (CI), never from the services' hot paths.
          env {
            name  = "APICURIO_CCOMPAT_USE_CANONICAL_HASH"
            value = "true"
          }
          resources {
            requests = { cpu = "1", memory = "2Gi" }
            limits   = { memory = "2Gi" }
          }
          readiness_probe {
            http_get {
              path = "/health/ready"
              port = 8080
            }
          }
          liveness_probe {
            http_get {
              path = "/health/live"
              port = 8080
            }
            initial_delay_seconds = 60
          }
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "apicurio" {
  metadata {
    name      = "apicurio"
    namespace = kubernetes_namespace_v1.votestream.metadata[0].name
  }
  spec {
    selector = { app = "apicurio" }
    port {
      port        = 8080
      target_port = 8080
    }
  }
}

# Prometheus + Alertmanager + Grafana (kube-prometheus-stack) with votestream's operations as code:
#   deploy/monitoring/rules/*.yaml        -> PrometheusRule objects (the chart renders additionalPrometheusRulesMap
#                                            after installing its CRDs: no CRD-before-plan problem)
#   deploy/monitoring/dashboards/*.json   -> ConfigMaps labelled grafana_dashboard=1 (Grafana's sidecar loads them)
# Prometheus scrapes every pod annotated prometheus.io/scrape=true on prometheus.io/port and /metrics (the
# votestream pods' metrics ports: ingest 9471, projections 9472, stream 9470), plus EMQX's ServiceMonitor.
# Alertmanager posts every alert to the pager webhook whose URL is in alert_receiver_webhook_secret_arn.

locals {
  rule_files      = fileset("${var.monitoring_dir}/rules", "*.yaml")
  dashboard_files = fileset("${var.monitoring_dir}/dashboards", "*.json")
}

resource "kubernetes_namespace_v1" "monitoring" {
  metadata {
    name = "monitoring"
  }
}

data "aws_secretsmanager_secret_version" "alert_webhook" {
  secret_id = var.alert_receiver_webhook_secret_arn
}

# Alertmanager reads the URL from a file (url_file), so it never appears in the chart's values or the config.
resource "kubernetes_secret_v1" "alert_webhook" {
  metadata {
    name      = "alert-webhook"
    namespace = kubernetes_namespace_v1.monitoring.metadata[0].name
  }
  data = {
    url = data.aws_secretsmanager_secret_version.alert_webhook.secret_string
  }
}

resource "kubernetes_config_map_v1" "dashboard" {
  for_each = local.dashboard_files
  metadata {
    name      = "dashboard-${trimsuffix(each.value, ".json")}"
    namespace = kubernetes_namespace_v1.monitoring.metadata[0].name
    labels    = { grafana_dashboard = "1" }
  }
  data = {
    (each.value) = file("${var.monitoring_dir}/dashboards/${each.value}")
  }
}

resource "helm_release" "kube_prometheus_stack" {
  name       = "kube-prometheus-stack"
  namespace  = kubernetes_namespace_v1.monitoring.metadata[0].name
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "kube-prometheus-stack"
  version    = "72.6.2"
  timeout    = 900

  values = [yamlencode({
    # One PrometheusRule per rule file, named after it.
    additionalPrometheusRulesMap = {
      for f in local.rule_files : trimsuffix(f, ".yaml") => yamldecode(file("${var.monitoring_dir}/rules/${f}"))
    }
    prometheus = {
      prometheusSpec = {
        replicas                                = 2
        retention                               = "15d"
        nodeSelector                            = { "votestream.io/pool" = "platform" }
        resources                               = { requests = { cpu = "2", memory = "12Gi" }, limits = { memory = "16Gi" } }
        ruleSelectorNilUsesHelmValues           = false
        serviceMonitorSelectorNilUsesHelmValues = false
        podMonitorSelectorNilUsesHelmValues     = false
        additionalScrapeConfigs = [{
          job_name              = "annotated-pods"
          kubernetes_sd_configs = [{ role = "pod" }]
          relabel_configs = [
            { source_labels = ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], action = "keep", regex = "true" },
            { source_labels = ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"], action = "replace", regex = "([^:]+)(?::\\d+)?;(\\d+)", replacement = "$1:$2", target_label = "__address__" },
            { source_labels = ["__meta_kubernetes_pod_annotation_prometheus_io_path"], action = "replace", regex = "(.+)", target_label = "__metrics_path__" },
            { source_labels = ["__meta_kubernetes_namespace"], target_label = "namespace" },
            { source_labels = ["__meta_kubernetes_pod_name"], target_label = "pod" },
            { source_labels = ["__meta_kubernetes_pod_label_app"], target_label = "app" },
          ]
        }]
      }
    }
    alertmanager = {
      alertmanagerSpec = {
        replicas     = 2
        nodeSelector = { "votestream.io/pool" = "platform" }
        secrets      = [kubernetes_secret_v1.alert_webhook.metadata[0].name]
      }
      config = {
        route = {
          receiver        = "pager"
          group_by        = ["alertname", "stage", "topic"]
          group_wait      = "30s"
          group_interval  = "5m"
          repeat_interval = "2h"
        }
        receivers = [{
          name = "pager"
          webhook_configs = [{
            url_file      = "/etc/alertmanager/secrets/${kubernetes_secret_v1.alert_webhook.metadata[0].name}/url"
            send_resolved = true
          }]
        }]
      }
    }
    grafana = {
      nodeSelector = { "votestream.io/pool" = "platform" }
      sidecar = {
        dashboards = { enabled = true, label = "grafana_dashboard", labelValue = "1", searchNamespace = "ALL" }
      }
    }
    prometheusOperator   = { nodeSelector = { "votestream.io/pool" = "platform" } }
    "kube-state-metrics" = { nodeSelector = { "votestream.io/pool" = "platform" } }
  })]
}

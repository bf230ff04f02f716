# EMQX 5 (MQTT broker) on its own node group. Who may do what:
#   public listeners tcp:default (1883) and ws:default (8083), behind the NLB's TLS 8883 and WSS 443 with the
#     certificate of mqtt_domain_name: no authentication (enable_authn = false), and the ACL lets anyone only
#     subscribe under votestream/polls/#. A client that sends a username or password is still anonymous here,
#     so naming itself "projections" gives it nothing.
#   publisher listener tcp:publisher (1884), reachable only inside the cluster (service emqx-publisher, not in
#     any target group): password authentication required (quick_deny_anonymous) against EMQX's built-in
#     database, which holds one user, `projections`, a superuser (the ACL does not apply to it). Its password is
#     the Secrets Manager secret <name>/projections/mqtt-password; an init container writes it into the
#     bootstrap file EMQX loads at start.
# All nodes are core nodes: the open-source chart has no replicant role (the EMQX Operator has). That is
# acceptable here because the replicated state is small: the session registry is off (subscribers use clean
# sessions with random client ids, so there is no per-connection cluster-wide write) and routes are per topic
# per node (2 topics per poll). docs/architecture.md trade-offs.

locals {
  emqx_publisher_port = 1884
  # What projections' MQTT_URL must be (the deploy chart's values; modules/platform/services.tf until then).
  mqtt_publisher_url   = "mqtt://emqx-publisher.emqx.svc.cluster.local:${local.emqx_publisher_port}"
  emqx_authn_bootstrap = "/opt/emqx/data/authn-bootstrap.csv"
}

resource "helm_release" "emqx" {
  name             = "emqx"
  namespace        = kubernetes_namespace_v1.emqx.metadata[0].name
  repository       = "https://repos.emqx.io/charts"
  chart            = "emqx"
  version          = var.emqx_chart_version
  create_namespace = false
  timeout          = 900

  values = [yamlencode({
    replicaCount = var.emqx_replicas
    nodeSelector = { "votestream.io/pool" = "emqx" }
    tolerations  = [{ key = "votestream.io/pool", operator = "Equal", value = "emqx", effect = "NoSchedule" }]
    topologySpreadConstraints = [{
      maxSkew           = 1
      topologyKey       = "topology.kubernetes.io/zone"
      whenUnsatisfiable = "DoNotSchedule"
      labelSelector     = { matchLabels = { "app.kubernetes.io/name" = "emqx" } }
    }]
    resources = {
      requests = { cpu = "14", memory = "56Gi" }
      limits   = { memory = "60Gi" }
    }
    service = { type = "ClusterIP" }
    # No volumes: retained totals are republished by projections after a broker restart
    # (projections/src/live/publisher.ts), and the cluster's routing table rebuilds from live subscriptions.
    persistence = { enabled = false }
    # Secrets as environment: the dashboard's admin password (the chart's default is public) and, from 5.9, the
    # licence key.
    envFromSecret = kubernetes_secret_v1.emqx_env.metadata[0].name
    # Writes the publisher's bootstrap file into the data volume the EMQX container mounts.
    initContainers = [{
      name    = "authn-bootstrap"
      image   = "emqx/emqx:${var.emqx_chart_version}"
      command = ["/bin/sh", "-c", "umask 077 && printf 'user_id,password,is_superuser\\nprojections,%s,true\\n' \"$PUBLISHER_PASSWORD\" > ${local.emqx_authn_bootstrap}"]
      env = [{
        name      = "PUBLISHER_PASSWORD"
        valueFrom = { secretKeyRef = { name = kubernetes_secret_v1.emqx.metadata[0].name, key = "password" } }
      }]
      volumeMounts    = [{ name = "emqx-data", mountPath = "/opt/emqx/data" }]
      securityContext = { allowPrivilegeEscalation = false, capabilities = { drop = ["ALL"] }, runAsNonRoot = true }
    }]
    # EMQX's Prometheus endpoint, scraped by the monitoring stack (ServiceMonitor).
    metrics = { enabled = true, type = "prometheus" }
    emqxConfig = {
      EMQX_CLUSTER__DISCOVERY_STRATEGY = "k8s"
      EMQX_CLUSTER__K8S__APISERVER     = "https://kubernetes.default.svc:443"
      EMQX_CLUSTER__K8S__SERVICE_NAME  = "emqx-headless"
      EMQX_CLUSTER__K8S__NAMESPACE     = "emqx"
      EMQX_CLUSTER__K8S__ADDRESS_TYPE  = "hostname"
      # Connection limits: ~3M subscribers per node on m7i.8xlarge (docs/capacity.md).
      EMQX_LISTENERS__TCP__DEFAULT__MAX_CONNECTIONS = "4000000"
      EMQX_LISTENERS__WS__DEFAULT__MAX_CONNECTIONS  = "4000000"
      EMQX_LISTENERS__TCP__DEFAULT__ACCEPTORS       = "64"
      # The NLB terminates TLS (certificate of mqtt_domain_name); EMQX's own TLS listeners are off.
      EMQX_LISTENERS__SSL__DEFAULT__ENABLE            = "false"
      EMQX_LISTENERS__WSS__DEFAULT__ENABLE            = "false"
      EMQX_LISTENERS__TCP__DEFAULT__ENABLE_AUTHN      = "false"
      EMQX_LISTENERS__WS__DEFAULT__ENABLE_AUTHN       = "false"
      EMQX_LISTENERS__TCP__PUBLISHER__BIND            = "0.0.0.0:${local.emqx_publisher_port}"
      EMQX_LISTENERS__TCP__PUBLISHER__ENABLE_AUTHN    = "quick_deny_anonymous"
      EMQX_LISTENERS__TCP__PUBLISHER__MAX_CONNECTIONS = "1000"
      EMQX_AUTHENTICATION                             = "[{mechanism = password_based, backend = built_in_database, user_id_type = username, password_hash_algorithm = {name = sha256, salt_position = suffix}, bootstrap_file = \"${local.emqx_authn_bootstrap}\", bootstrap_type = plain}]"
      # Clean sessions with random client ids: no cluster-wide registry write per connection.
      EMQX_BROKER__ENABLE_SESSION_REGISTRY = "false"
      EMQX_MQTT__MAX_PACKET_SIZE           = "64KB"
      EMQX_MQTT__MAX_MQUEUE_LEN            = "100"
      EMQX_MQTT__RETAIN_AVAILABLE          = "true"
      # Authorization for everyone but the superuser: read-only under votestream/polls/#, everything else denied.
      EMQX_AUTHORIZATION__NO_MATCH = "deny"
      EMQX_AUTHORIZATION__SOURCES  = "[{type = file, enable = true, path = \"/opt/emqx/etc/acl.conf\"}]"
    }
    emqxAclConfig = <<-ACL
      {allow, all, subscribe, ["votestream/polls/#"]}.
      {deny, all}.
    ACL
  })]
}

# In-cluster only: the publisher's listener.
resource "kubernetes_service_v1" "emqx_publisher" {
  metadata {
    name      = "emqx-publisher"
    namespace = kubernetes_namespace_v1.emqx.metadata[0].name
  }
  spec {
    selector = { "app.kubernetes.io/name" = "emqx" }
    port {
      port        = local.emqx_publisher_port
      target_port = local.emqx_publisher_port
    }
  }
  depends_on = [helm_release.emqx]
}

# The AWS Load Balancer Controller keeps the NLB's ip target groups pointed at the EMQX pods and the ALB's at
# the ingest and projections pods.
resource "helm_release" "aws_load_balancer_controller" {
  name       = "aws-load-balancer-controller"
  namespace  = "kube-system"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = "1.11.0"

  values = [yamlencode({
    clusterName  = var.cluster_name
    region       = var.region
    vpcId        = var.vpc_id
    nodeSelector = { "votestream.io/pool" = "platform" }
    serviceAccount = {
      name        = "aws-load-balancer-controller"
      annotations = { "eks.amazonaws.com/role-arn" = module.lb_controller_role.role_arn }
    }
  })]
}

# Pods into the ip target groups Terraform owns (edge module): a Service per target and a TargetGroupBinding,
# both from the local chart deploy/helm/target-group-bindings. A helm_release, not kubernetes_manifest: the
# kubernetes provider needs a CRD to exist at plan time to plan a custom resource, and TargetGroupBinding's CRD is
# installed by the controller's chart in the same apply (hashicorp/terraform-provider-kubernetes#2597). Helm
# renders at apply time, after the controller's release.
locals {
  target_group_bindings = [
    { name = "ingest-lb", namespace = "votestream", selector = { app = "ingest" }, port = 8080, targetGroupARN = var.target_group_arns["ingest"] },
    { name = "projections-lb", namespace = "votestream", selector = { app = "projections" }, port = 8090, targetGroupARN = var.target_group_arns["projections"] },
    { name = "emqx-mqtt-lb", namespace = "emqx", selector = { "app.kubernetes.io/name" = "emqx" }, port = 1883, targetGroupARN = var.target_group_arns["emqx_mqtt"] },
    { name = "emqx-ws-lb", namespace = "emqx", selector = { "app.kubernetes.io/name" = "emqx" }, port = 8083, targetGroupARN = var.target_group_arns["emqx_ws"] },
  ]
}

resource "helm_release" "target_group_bindings" {
  name      = "target-group-bindings"
  namespace = "kube-system"
  chart     = "${path.module}/../../../deploy/helm/target-group-bindings"
  values    = [yamlencode({ bindings = local.target_group_bindings })]

  depends_on = [helm_release.aws_load_balancer_controller, helm_release.emqx, kubernetes_namespace_v1.votestream]
}

# EMQX 5 (MQTT broker) on its own node group. Core nodes hold the cluster's routing state (Mria); replicant
# nodes hold the subscriber connections and scale out. Anonymous clients (TV graphics, apps, browsers) may
# only subscribe under votestream/polls/#; the user `projections` is the only publisher: the same ACL as the
# local Mosquitto (compose/native/conf/mosquitto.acl).

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
      # The NLB terminates TLS; EMQX sees plain MQTT and WebSocket connections from the NLB.
      EMQX_MQTT__MAX_PACKET_SIZE  = "64KB"
      EMQX_MQTT__MAX_MQUEUE_LEN   = "100"
      EMQX_MQTT__RETAIN_AVAILABLE = "true"
      # Authorization: anonymous read-only under votestream/polls/#, publisher `projections` (built-in DB).
      EMQX_AUTHORIZATION__NO_MATCH = "deny"
      EMQX_AUTHORIZATION__SOURCES  = "[{type = file, enable = true, path = \"/opt/emqx/etc/acl.conf\"}]"
      # Authentication: the `projections` user lives in EMQX's built-in database, loaded from a bootstrap
      # file rendered from the emqx-projections-user secret. NOT wired yet (see terraform/README.md, gaps).
    }
    emqxAclConfig = <<-ACL
      {allow, {username, {re, "^projections$"}}, publish, ["votestream/#"]}.
      {allow, all, subscribe, ["votestream/polls/#"]}.
      {deny, all}.
    ACL
  })]
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

resource "kubernetes_service_v1" "bound" {
  for_each = {
    ingest      = { namespace = "votestream", selector = { app = "ingest" }, port = 8080 }
    projections = { namespace = "votestream", selector = { app = "projections" }, port = 8090 }
    emqx_mqtt   = { namespace = "emqx", selector = { "app.kubernetes.io/name" = "emqx" }, port = 1883 }
    emqx_ws     = { namespace = "emqx", selector = { "app.kubernetes.io/name" = "emqx" }, port = 8083 }
  }
  metadata {
    name      = replace("${each.key}-lb", "_", "-")
    namespace = each.value.namespace
  }
  spec {
    selector = each.value.selector
    port {
      port        = each.value.port
      target_port = each.value.port
    }
  }
  depends_on = [helm_release.emqx]
}

resource "kubernetes_manifest" "target_group_binding" {
  for_each = kubernetes_service_v1.bound
  manifest = {
    apiVersion = "elbv2.k8s.aws/v1beta1"
    kind       = "TargetGroupBinding"
    metadata = {
      name      = each.value.metadata[0].name
      namespace = each.value.metadata[0].namespace
    }
    spec = {
      targetGroupARN = var.target_group_arns[each.key]
      targetType     = "ip"
      serviceRef = {
        name = each.value.metadata[0].name
        port = each.value.spec[0].port[0].port
      }
    }
  }
  depends_on = [helm_release.aws_load_balancer_controller]
}

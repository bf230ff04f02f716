# votestream production on AWS: one region, three availability zones, long-running services only.
#
#   modules/network       VPC, public/private/data subnets in 3 zones, NAT per zone, endpoints, flow logs
#   modules/kms           customer managed keys per purpose (rotation on)
#   modules/eks           EKS + managed node groups: ingest, stream, projections, emqx, platform
#   modules/msk           Amazon MSK (RF 3, min ISR 2, transactions), IAM + SCRAM auth, TLS only
#   modules/kafka-topics  the topics of libs/runtime/src/topics.ts and the stream's changelogs
#   modules/scylla        ScyllaDB on i4i, one rack per zone, NetworkTopologyStrategy RF 3
#   modules/redis         ElastiCache Redis OSS, cluster mode, Multi-AZ, TLS + AUTH
#   modules/logs          S3 buckets of the ALB/NLB access logs and the WAF full logs
#   modules/edge          ALB + AWS WAF + Shield Advanced for the vote API, NLB for MQTT, optional CloudFront
#   modules/cluster-addons metrics-server, Karpenter (+ NodePools), kube-prometheus-stack with deploy/monitoring
#   modules/platform      IRSA roles, secrets, the three deployables, Apicurio, EMQX, LB controller, CQL migrate job

data "aws_availability_zones" "available" {
  state = "available"
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  name = "votestream-${var.environment}"
  azs  = slice(data.aws_availability_zones.available.names, 0, var.availability_zone_count)
  # ScyllaDB data center = region name; it is also CQL_LOCAL_DC of every service.
  cql_datacenter = var.region
}

resource "aws_iam_service_linked_role" "autoscaling" {
  count            = var.create_autoscaling_service_linked_role ? 1 : 0
  aws_service_name = "autoscaling.amazonaws.com"
}

module "kms" {
  source   = "./modules/kms"
  name     = local.name
  purposes = ["msk", "scylla", "redis", "eks", "ebs", "logs", "secrets", "backup"]

  # The ebs key's policy names the Auto Scaling service-linked role.
  depends_on = [aws_iam_service_linked_role.autoscaling]
}

module "logs" {
  source             = "./modules/logs"
  name               = local.name
  kms_key_arn        = module.kms.key_arns["logs"]
  log_retention_days = var.log_retention_days
}

module "network" {
  source                = "./modules/network"
  name                  = local.name
  cidr                  = var.vpc_cidr
  azs                   = local.azs
  cluster_name          = local.name
  flow_logs_kms_key_arn = module.kms.key_arns["logs"]
  log_retention_days    = var.log_retention_days
}

module "eks" {
  source              = "./modules/eks"
  name                = local.name
  kubernetes_version  = var.eks_version
  vpc_id              = module.network.vpc_id
  subnet_ids          = module.network.private_subnet_ids
  admin_cidrs         = var.admin_cidrs
  secrets_kms_key_arn = module.kms.key_arns["eks"]
  ebs_kms_key_arn     = module.kms.key_arns["ebs"]
  logs_kms_key_arn    = module.kms.key_arns["logs"]
  log_retention_days  = var.log_retention_days
  node_groups         = var.node_groups
}

module "msk" {
  source                    = "./modules/msk"
  name                      = local.name
  kafka_version             = var.msk_kafka_version
  broker_count              = var.msk_broker_count
  instance_type             = var.msk_instance_type
  volume_gib                = var.msk_volume_gib
  volume_gib_max            = var.msk_volume_gib_max
  volume_throughput_mibps   = var.msk_volume_throughput_mibps
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.data_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  kms_key_arn               = module.kms.key_arns["msk"]
  logs_kms_key_arn          = module.kms.key_arns["logs"]
  log_retention_days        = var.log_retention_days
  secrets_kms_key_arn       = module.kms.key_arns["secrets"]
}

module "kafka_topics" {
  source             = "./modules/kafka-topics"
  count              = var.manage_topics ? 1 : 0
  prefix             = var.topic_prefix
  votes_partitions   = var.votes_partitions
  votes_retention_ms = var.votes_retention_hours * 3600 * 1000
  depends_on         = [module.msk]
}

module "scylla" {
  source                    = "./modules/scylla"
  name                      = local.name
  instance_type             = var.scylla_instance_type
  nodes_per_az              = var.scylla_nodes_per_az
  ami_id                    = var.scylla_ami_id
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.data_subnet_ids
  subnet_cidrs              = module.network.data_subnet_cidrs
  azs                       = local.azs
  datacenter                = local.cql_datacenter
  client_security_group_ids = [module.eks.cluster_security_group_id]
  ebs_kms_key_arn           = module.kms.key_arns["ebs"]
  backup_bucket_kms_key_arn = module.kms.key_arns["backup"]
  secrets_kms_key_arn       = module.kms.key_arns["secrets"]
  manager_subnet_id         = module.network.private_subnet_ids[0]
}

module "redis" {
  source                    = "./modules/redis"
  name                      = local.name
  node_type                 = var.redis_node_type
  shards                    = var.redis_shards
  replicas_per_shard        = var.redis_replicas_per_shard
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.data_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  kms_key_arn               = module.kms.key_arns["redis"]
  secrets_kms_key_arn       = module.kms.key_arns["secrets"]
}

module "edge" {
  source                          = "./modules/edge"
  name                            = local.name
  vpc_id                          = module.network.vpc_id
  public_subnet_ids               = module.network.public_subnet_ids
  pod_security_group_id           = module.eks.cluster_security_group_id
  api_domain_name                 = var.api_domain_name
  api_certificate_arn             = var.api_certificate_arn
  cloudfront_certificate_arn      = var.cloudfront_certificate_arn
  mqtt_domain_name                = var.mqtt_domain_name
  mqtt_certificate_domain         = coalesce(var.mqtt_certificate_domain, var.mqtt_domain_name)
  waf_rate_limit_per_ip_5min      = var.waf_rate_limit_per_ip_5min
  waf_vote_rate_limit_per_ip_5min = var.waf_vote_rate_limit_per_ip_5min
  sdk_client_header_prefix        = "votestream-sdk/"
  enable_shield_advanced          = var.enable_shield_advanced
  enable_cloudfront               = var.enable_cloudfront
  access_logs_bucket              = module.logs.access_logs_bucket
  waf_logs_bucket_arn             = module.logs.waf_logs_bucket_arn
  alb_reserved_capacity_units     = var.alb_reserved_capacity_units
  nlb_reserved_capacity_units     = var.nlb_reserved_capacity_units
}

# Cluster capacity and observability: metrics-server (HPA), Karpenter (nodes for pods that wait), the
# Prometheus/Alertmanager/Grafana stack with the rules and dashboards of deploy/monitoring.
module "cluster_addons" {
  source                            = "./modules/cluster-addons"
  name                              = local.name
  region                            = var.region
  cluster_name                      = module.eks.cluster_name
  cluster_endpoint                  = module.eks.cluster_endpoint
  oidc_provider_arn                 = module.eks.oidc_provider_arn
  oidc_issuer                       = module.eks.oidc_issuer
  node_role_arn                     = module.eks.node_role_arn
  node_role_name                    = module.eks.node_role_name
  node_subnet_ids                   = module.eks.subnet_ids
  node_security_group_ids           = module.eks.node_security_group_ids
  node_groups                       = var.node_groups
  ebs_kms_key_arn                   = module.kms.key_arns["ebs"]
  karpenter_chart_version           = var.karpenter_chart_version
  alert_receiver_webhook_secret_arn = var.alert_receiver_webhook_secret_arn
  monitoring_dir                    = "${path.root}/../deploy/monitoring"
}

module "platform" {
  source                  = "./modules/platform"
  name                    = local.name
  region                  = var.region
  vpc_id                  = module.network.vpc_id
  cluster_name            = module.eks.cluster_name
  oidc_provider_arn       = module.eks.oidc_provider_arn
  oidc_issuer             = module.eks.oidc_issuer
  msk_cluster_arn         = module.msk.cluster_arn
  kafka_brokers_iam       = module.msk.bootstrap_brokers_iam
  kafka_brokers_scram     = module.msk.bootstrap_brokers_scram
  apicurio_secret_arn     = module.msk.apicurio_secret_arn
  topic_prefix            = var.topic_prefix
  cql_contact_points      = module.scylla.contact_points
  cql_datacenter          = module.scylla.datacenter
  cql_keyspace            = var.cql_keyspace
  cql_replication         = module.scylla.replication
  cql_ca_cert_pem         = module.scylla.ca_cert_pem
  cql_username            = module.scylla.cql_service_username
  cql_secret_arn          = module.scylla.cql_service_secret_arn
  redis_endpoint          = module.redis.configuration_endpoint
  redis_auth_secret_arn   = module.redis.auth_secret_arn
  secrets_kms_key_arn     = module.kms.key_arns["secrets"]
  target_group_arns       = module.edge.target_group_arns
  image                   = "${var.image_repository}:${var.image_tag}"
  replicas                = var.replicas
  emqx_chart_version      = var.emqx_chart_version
  emqx_replicas           = var.emqx_replicas
  emqx_license_secret_arn = var.emqx_license_secret_arn
  # The name on the MQTT certificate, never the NLB's AWS name (TLS would fail in every browser).
  mqtt_public_ws_url = "wss://${var.mqtt_domain_name}/mqtt"
  api_public_url     = "https://${var.api_domain_name}"
  jwt_jwks_url       = var.jwt_jwks_url
  jwt_issuer         = var.jwt_issuer
  jwt_audience       = var.jwt_audience
  # How ingest finds the voter's address for its rate limits (COMMON.md convention).
  client_address_source = var.enable_cloudfront ? "cloudfront" : "alb"
  trust_proxy_hops      = 1

  # Topics before workloads; the TargetGroupBindings need the load balancer controller's webhook, which runs
  # on nodes Karpenter or the node groups provide.
  depends_on = [module.kafka_topics, module.cluster_addons]
}

output "vpc_id" {
  description = "VPC id."
  value       = module.network.vpc_id
}

output "eks_cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}

output "kafka_bootstrap_brokers_iam" {
  description = "MSK bootstrap brokers, TLS + IAM (KAFKA_BROKERS)."
  value       = module.msk.bootstrap_brokers_iam
}

output "cql_contact_points" {
  description = "ScyllaDB contact points (CQL_CONTACT_POINTS)."
  value       = module.scylla.contact_points
}

output "cql_local_dc" {
  description = "ScyllaDB data center (CQL_LOCAL_DC)."
  value       = module.scylla.datacenter
}

output "redis_configuration_endpoint" {
  description = "ElastiCache configuration endpoint (cluster mode)."
  value       = module.redis.configuration_endpoint
}

output "api_alb_dns_name" {
  description = "DNS name of the vote API load balancer; point api_domain_name here (or at CloudFront)."
  value       = module.edge.alb_dns_name
}

output "api_cloudfront_domain_name" {
  description = "CloudFront domain, when enable_cloudfront is true."
  value       = module.edge.cloudfront_domain_name
}

output "mqtt_nlb_dns_name" {
  description = "AWS DNS name of the MQTT NLB: point mqtt_domain_name at it (clients use mqtt_domain_name, which the certificate names)."
  value       = module.edge.mqtt_dns_name
}

output "mqtt_url" {
  description = "What subscribers connect to: MQTT over TLS on 8883 and MQTT over WSS on 443 at this name."
  value       = "mqtts://${var.mqtt_domain_name}:8883 and wss://${var.mqtt_domain_name}/mqtt"
}

output "access_logs_bucket" {
  description = "S3 bucket of the ALB (alb/) and NLB (nlb/) access logs."
  value       = module.logs.access_logs_bucket
}

output "waf_logs_bucket_arn" {
  description = "S3 bucket of the WAF full logs."
  value       = module.logs.waf_logs_bucket_arn
}

output "scylla_backup_bucket" {
  description = "S3 bucket of the ScyllaDB Manager backups (versioned)."
  value       = module.scylla.backup_bucket
}

output "web_acl_arn" {
  description = "AWS WAF web ACL protecting the vote API."
  value       = module.edge.web_acl_arn
}

output "service_role_arns" {
  description = "IRSA role per service."
  value       = module.platform.service_role_arns
}

output "scylla_manager_instance_id" {
  description = "EC2 instance of ScyllaDB Manager (SSM Session Manager; sctool tasks)."
  value       = module.scylla.manager_instance_id
}

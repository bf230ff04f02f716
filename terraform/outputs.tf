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

output "mqtt_dns_name" {
  description = "DNS name of the MQTT endpoint (8883 MQTT over TLS, 443 MQTT over WSS)."
  value       = module.edge.mqtt_dns_name
}

output "web_acl_arn" {
  description = "AWS WAF web ACL protecting the vote API."
  value       = module.edge.web_acl_arn
}

output "service_role_arns" {
  description = "IRSA role per service."
  value       = module.platform.service_role_arns
}

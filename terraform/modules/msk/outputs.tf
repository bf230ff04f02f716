output "cluster_arn" {
  description = "MSK cluster ARN."
  value       = aws_msk_cluster.this.arn
}

output "cluster_name" {
  description = "MSK cluster name."
  value       = aws_msk_cluster.this.cluster_name
}

output "bootstrap_brokers_iam" {
  description = "Bootstrap brokers for TLS + IAM clients (port 9098), comma separated."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "bootstrap_brokers_scram" {
  description = "Bootstrap brokers for TLS + SCRAM clients (port 9096), comma separated."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_scram
}

output "apicurio_secret_arn" {
  description = "Secrets Manager secret holding Apicurio's SCRAM credentials."
  value       = aws_secretsmanager_secret.apicurio.arn
}

output "security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.brokers.id
}

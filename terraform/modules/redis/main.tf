# ElastiCache for Redis OSS in cluster mode, Multi-AZ with automatic failover: the vote path's fast guards
# (per-voter vote guard, idempotency records, used proof-of-work challenges, rate limits: ingest) and the
# hot results (libs/read-models). Encrypted at rest (KMS) and in transit (TLS); AUTH token from Secrets Manager.
# Persistence is not the durability story: every acknowledged vote is in Kafka, and the guards are
# advisory (the stream's dedupe is authoritative), so a lost shard costs duplicate 202s, not wrong tallies.

variable "name" {
  description = "Replication group id."
  type        = string
}

variable "node_type" {
  description = "Node type."
  type        = string
}

variable "shards" {
  description = "Number of shards."
  type        = number
}

variable "replicas_per_shard" {
  description = "Replicas per shard."
  type        = number
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "subnet_ids" {
  description = "Data subnets, one per zone."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect (the EKS nodes)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the AUTH token secret."
  type        = string
}

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "Redis TLS from the EKS nodes only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "redis" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.redis.id
  referenced_security_group_id = each.key
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  description                  = "Redis TLS from EKS"
}

resource "aws_elasticache_parameter_group" "this" {
  name   = var.name
  family = "redis7"

  parameter {
    name  = "cluster-enabled"
    value = "yes"
  }

  # Guards and idempotency records carry TTLs; never evict a live guard to make room (a 503 beats a double vote).
  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }
}

# Rotated every 90 days at the next apply (no Lambda): with the ROTATE strategy ElastiCache accepts the old and
# the new token until the following change, so pods still holding the old file keep working until they roll.
resource "time_rotating" "auth" {
  rotation_days = 90
}

resource "random_password" "auth" {
  length  = 64
  special = false
  keepers = { rotation = time_rotating.auth.id }
}

resource "aws_secretsmanager_secret" "auth" {
  name       = "${var.name}/redis-auth"
  kms_key_id = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "auth" {
  secret_id     = aws_secretsmanager_secret.auth.id
  secret_string = random_password.auth.result
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = var.name
  description                = "votestream vote guards, rate limits and hot results"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.node_type
  port                       = 6379
  parameter_group_name       = aws_elasticache_parameter_group.this.name
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]
  num_node_groups            = var.shards
  replicas_per_node_group    = var.replicas_per_shard
  automatic_failover_enabled = true
  multi_az_enabled           = true
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = random_password.auth.result
  auth_token_update_strategy = "ROTATE"
  snapshot_retention_limit   = 1
  snapshot_window            = "04:00-05:00"
  maintenance_window         = "tue:05:30-tue:06:30"
  auto_minor_version_upgrade = true
  apply_immediately          = false
}

output "configuration_endpoint" {
  description = "Cluster configuration endpoint (rediss://, cluster mode)."
  value       = aws_elasticache_replication_group.this.configuration_endpoint_address
}

output "auth_secret_arn" {
  description = "Secret holding the AUTH token."
  value       = aws_secretsmanager_secret.auth.arn
}

variable "name" {
  description = "Cluster name."
  type        = string
}

variable "kafka_version" {
  description = "MSK Kafka version."
  type        = string
}

variable "broker_count" {
  description = "Number of brokers (multiple of 3)."
  type        = number
}

variable "instance_type" {
  description = "Broker instance type."
  type        = string
}

variable "volume_gib" {
  description = "Initial EBS volume per broker (GiB)."
  type        = number
}

variable "volume_gib_max" {
  description = "Storage autoscaling upper bound per broker (GiB)."
  type        = number
}

variable "volume_throughput_mibps" {
  description = "Provisioned EBS throughput per broker (MiB/s)."
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
  description = "Security groups whose members may connect as Kafka clients (the EKS nodes)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "KMS key of the broker log group."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the SCRAM secret (MSK requires a customer managed key)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the broker log group (days)."
  type        = number
}

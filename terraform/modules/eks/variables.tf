variable "name" {
  description = "Cluster name."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes version."
  type        = string
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (one per zone) for the control plane ENIs and the nodes."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "CIDRs allowed on the public API endpoint; empty disables the public endpoint."
  type        = list(string)
}

variable "secrets_kms_key_arn" {
  description = "KMS key for envelope encryption of Kubernetes secrets."
  type        = string
}

variable "ebs_kms_key_arn" {
  description = "KMS key encrypting the nodes' root volumes."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "KMS key of the control plane log group."
  type        = string
}

variable "node_groups" {
  description = "Managed node groups (see the root variable node_groups)."
  type = map(object({
    instance_types = list(string)
    min_size       = number
    desired_size   = number
    max_size       = number
    disk_gib       = number
    dedicated      = bool
  }))
}

variable "log_retention_days" {
  description = "Retention of the control plane log group (days)."
  type        = number
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
}

variable "cidr" {
  description = "VPC CIDR."
  type        = string
}

variable "azs" {
  description = "The three availability zones."
  type        = list(string)

  validation {
    condition     = length(var.azs) == 3
    error_message = "Exactly 3 availability zones."
  }
}

variable "flow_logs_kms_key_arn" {
  description = "KMS key encrypting the VPC flow logs log group."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster name, tagged on subnets so the AWS Load Balancer Controller can find them."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the VPC flow log group (days)."
  type        = number
}

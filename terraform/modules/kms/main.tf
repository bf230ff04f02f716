# One customer managed key per purpose, so a grant on one (e.g. to MSK) never opens another's data.
variable "name" {
  description = "Name prefix."
  type        = string
}

variable "purposes" {
  description = "Key purposes, e.g. [\"msk\", \"scylla\", \"redis\", \"eks\", \"logs\", \"secrets\"]."
  type        = set(string)
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  # AWS creates it with the account's first Auto Scaling group, but KMS refuses a key policy naming a principal
  # that does not exist yet: on a new account the root module creates it first
  # (create_autoscaling_service_linked_role = true).
  autoscaling_service_linked_role = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}

# Key policy: account root administers (IAM policies then grant use per role); the Auto Scaling service-linked role
# may use the "ebs" key; CloudWatch Logs and log delivery may use the "logs" key for this account's logs.
data "aws_iam_policy_document" "key" {
  for_each = var.purposes

  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # EBS volumes of EC2 Auto Scaling groups (the EKS managed node groups' launch template) are created by the Auto
  # Scaling service-linked role, not by the caller: without these two statements every node launch fails with
  # Client.InvalidKMSKey.InvalidState and the node groups never become ready (terraform-provider-aws#39904).
  # Karpenter launches through EC2 Fleet with its own role, which gets kms:CreateGrant etc. from its IAM policy.
  dynamic "statement" {
    for_each = each.key == "ebs" ? [1] : []
    content {
      sid       = "AutoScalingServiceLinkedRoleUsesKey"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = [local.autoscaling_service_linked_role]
      }
    }
  }

  dynamic "statement" {
    for_each = each.key == "ebs" ? [1] : []
    content {
      sid       = "AutoScalingServiceLinkedRoleGrantsToEc2"
      actions   = ["kms:CreateGrant"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = [local.autoscaling_service_linked_role]
      }
      condition {
        test     = "Bool"
        variable = "kms:GrantIsForAWSResource"
        values   = ["true"]
      }
    }
  }

  # Log delivery (WAF full logs and NLB access logs into S3, SSE-KMS with this key).
  dynamic "statement" {
    for_each = each.key == "logs" ? [1] : []
    content {
      sid       = "LogDeliveryEncrypts"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
      resources = ["*"]
      principals {
        type        = "Service"
        identifiers = ["delivery.logs.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }

  dynamic "statement" {
    for_each = each.key == "logs" ? [1] : []
    content {
      sid       = "CloudWatchLogsEncrypts"
      actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      resources = ["*"]
      principals {
        type        = "Service"
        identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
      }
      condition {
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = ["arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*"]
      }
    }
  }
}

resource "aws_kms_key" "this" {
  for_each                = var.purposes
  description             = "votestream ${var.name} ${each.key}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key[each.key].json
}

resource "aws_kms_alias" "this" {
  for_each      = var.purposes
  name          = "alias/${var.name}-${each.key}"
  target_key_id = aws_kms_key.this[each.key].key_id
}

output "key_arns" {
  description = "KMS key ARN per purpose."
  value       = { for k, v in aws_kms_key.this : k => v.arn }
}

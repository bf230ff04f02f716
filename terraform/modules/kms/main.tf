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

# Key policy: account root administers; CloudWatch Logs may use the "logs" key for log groups of this account.
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

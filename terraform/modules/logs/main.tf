# Where the edge writes its records, kept for abuse investigations and incident reviews:
#   access   ALB and NLB access logs (every request / every TLS connection). SSE-S3: ALB log delivery supports
#            only S3-managed keys (a customer managed key makes delivery fail silently).
#   waf      AWS WAF full logs (every request with the rule that matched and the labels it got; the
#            Authorization header is redacted at the source). The name must start with aws-waf-logs-. SSE-KMS.
# Both: private, versioned, owner-enforced objects, TLS-only access, expiry after log_retention_days.

variable "name" {
  description = "Name prefix."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the WAF log bucket (its policy lets delivery.logs.amazonaws.com use it)."
  type        = string
}

variable "log_retention_days" {
  description = "Days a log object is kept (current and previous versions)."
  type        = number
}

data "aws_caller_identity" "current" {}

# The account ELB delivers ALB logs from, in regions opened before August 2022 (newer regions use the
# logdelivery.elasticloadbalancing.amazonaws.com service principal; both are allowed below).
data "aws_elb_service_account" "this" {}

locals {
  buckets = {
    access = { prefix = "${var.name}-lb-logs-", sse = "AES256", kms = null }
    waf    = { prefix = "aws-waf-logs-${var.name}-", sse = "aws:kms", kms = var.kms_key_arn }
  }
}

resource "aws_s3_bucket" "this" {
  for_each      = local.buckets
  bucket_prefix = each.value.prefix
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = aws_s3_bucket.this
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.buckets[each.key].sse
      kms_master_key_id = local.buckets[each.key].kms
    }
    bucket_key_enabled = local.buckets[each.key].kms != null
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id

  rule {
    id     = "expire"
    status = "Enabled"
    filter {}
    transition {
      days          = 30
      storage_class = "GLACIER_IR"
    }
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

locals {
  account = data.aws_caller_identity.current.account_id
  # Where the vended-logs service (delivery.logs.amazonaws.com) writes: NLB logs under nlb/, WAF logs at the root.
  delivery_prefix = { access = "nlb/", waf = "" }
  # ALB log delivery (access bucket only): the ELB account of regions opened before August 2022, and the service
  # principal of newer regions.
  alb_writers = {
    AlbLogDelivery        = { type = "AWS", identifier = data.aws_elb_service_account.this.arn }
    AlbLogDeliveryService = { type = "Service", identifier = "logdelivery.elasticloadbalancing.amazonaws.com" }
  }
}

data "aws_iam_policy_document" "bucket" {
  for_each = aws_s3_bucket.this

  dynamic "statement" {
    for_each = each.key == "access" ? local.alb_writers : {}
    content {
      sid       = statement.key
      actions   = ["s3:PutObject"]
      resources = ["${each.value.arn}/alb/AWSLogs/${local.account}/*"]
      principals {
        type        = statement.value.type
        identifiers = [statement.value.identifier]
      }
    }
  }

  statement {
    sid       = "LogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${each.value.arn}/${local.delivery_prefix[each.key]}AWSLogs/${local.account}/*"]
    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }

  statement {
    sid       = "LogDeliveryAcl"
    actions   = ["s3:GetBucketAcl"]
    resources = [each.value.arn]
    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }

  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  policy   = data.aws_iam_policy_document.bucket[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

# Both outputs wait for the bucket policies: ELB and WAF check that they may write when logging is turned on.
output "access_logs_bucket" {
  description = "Bucket of the ALB (prefix alb/) and NLB (prefix nlb/) access logs."
  value       = aws_s3_bucket.this["access"].id
  depends_on  = [aws_s3_bucket_policy.this]
}

output "waf_logs_bucket_arn" {
  description = "Bucket of the WAF full logs (a WAF logging destination)."
  value       = aws_s3_bucket.this["waf"].arn
  depends_on  = [aws_s3_bucket_policy.this]
}

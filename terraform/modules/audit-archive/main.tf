# The audit archive (docs/trust.md section 2): each poll's audit export (`npm run audit -- export`: the signed
# checkpoint of the final tally and every chained decision, no voter ids) is written once after the show and
# kept write-once: S3 Object Lock in COMPLIANCE mode, so nobody, the root account included, can change or delete
# an export before its retention ends. Versioning is required by Object Lock.

variable "name" {
  description = "Name prefix of the bucket."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the exports."
  type        = string
}

variable "retention_days" {
  description = "Days an export cannot be changed or deleted (COMPLIANCE mode: cannot be shortened)."
  type        = number
  default     = 400
  validation {
    condition     = var.retention_days >= 30
    error_message = "retention_days must be at least 30: an audit export has to outlive every dispute period."
  }
}

resource "aws_s3_bucket" "audit" {
  bucket_prefix       = "${var.name}-audit-"
  object_lock_enabled = true
}

resource "aws_s3_bucket_versioning" "audit" {
  bucket = aws_s3_bucket.audit.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.retention_days
    }
  }
  depends_on = [aws_s3_bucket_versioning.audit]
}

resource "aws_s3_bucket_public_access_block" "audit" {
  bucket                  = aws_s3_bucket.audit.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

data "aws_iam_policy_document" "audit" {
  statement {
    sid     = "TlsOnly"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.audit.arn, "${aws_s3_bucket.audit.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "audit" {
  bucket = aws_s3_bucket.audit.id
  policy = data.aws_iam_policy_document.audit.json
}

output "bucket" {
  description = "Bucket of the audit exports (s3://<bucket>/polls/<pollId>/audit.json)."
  value       = aws_s3_bucket.audit.bucket
}

# Exports are tiny and locked for retention_days; afterwards they may go (a dispute period has an end too).
resource "aws_s3_bucket_lifecycle_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    id     = "expire-after-retention"
    status = "Enabled"
    filter {}
    expiration {
      days = var.retention_days + 30
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  depends_on = [aws_s3_bucket_versioning.audit]
}

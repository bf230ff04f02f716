# IAM roles for service accounts. Each service may touch only its own Kafka topics, consumer groups and
# transactional ids on the MSK cluster (MSK IAM access control), and read only its own secrets.

data "aws_caller_identity" "current" {}

locals {
  # arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid> -> the same path for topics, groups, transactional ids.
  kafka_topic = replace(var.msk_cluster_arn, ":cluster/", ":topic/")
  kafka_group = replace(var.msk_cluster_arn, ":cluster/", ":group/")
  kafka_txn   = replace(var.msk_cluster_arn, ":cluster/", ":transactional-id/")
  p           = var.topic_prefix
  app         = var.stream_application_id

  connect = {
    sid       = "Connect"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [var.msk_cluster_arn]
  }

  service_statements = {
    ingest = [
      local.connect,
      { sid = "IdempotentProduce", actions = ["kafka-cluster:WriteDataIdempotently"], resources = [var.msk_cluster_arn] },
      { sid = "ProduceVotesAndPolls", actions = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"], resources = ["${local.kafka_topic}/${local.p}votes", "${local.kafka_topic}/${local.p}polls"] },
      { sid = "ReadPollCatalog", actions = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"], resources = ["${local.kafka_topic}/${local.p}polls"] },
      { sid = "CatalogGroups", actions = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"], resources = ["${local.kafka_group}/ingest-catalog-*"] },
      # Stale-vote resolution (ingest/src/votes/resolution.ts): end offsets of votes and vote-decisions, and the
      # committed positions of the dedupe and receipts groups (read only).
      { sid = "ResolutionOffsets", actions = ["kafka-cluster:DescribeTopic"], resources = ["${local.kafka_topic}/${local.p}votes", "${local.kafka_topic}/${local.p}vote-decisions"] },
      { sid = "ResolutionGroups", actions = ["kafka-cluster:DescribeGroup"], resources = ["${local.kafka_group}/${local.app}-dedupe", "${local.kafka_group}/${local.p}projections-receipts"] },
    ]
    stream = [
      local.connect,
      { sid = "IdempotentProduce", actions = ["kafka-cluster:WriteDataIdempotently"], resources = [var.msk_cluster_arn] },
      {
        sid     = "ReadInputs"
        actions = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
        resources = [
          "${local.kafka_topic}/${local.p}votes", "${local.kafka_topic}/${local.p}polls",
          "${local.kafka_topic}/${local.p}vote-decisions", # the analytics stage's input
          "${local.kafka_topic}/${local.p}tally-partials", "${local.kafka_topic}/${local.p}tallies",
          "${local.kafka_topic}/${local.p}${local.app}-*",
        ]
      },
      {
        sid     = "WriteOutputsAndChangelogs"
        actions = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
        resources = [
          "${local.kafka_topic}/${local.p}vote-decisions", "${local.kafka_topic}/${local.p}tally-partials",
          "${local.kafka_topic}/${local.p}tallies", "${local.kafka_topic}/${local.p}analytics-votes",
          "${local.kafka_topic}/${local.p}${local.app}-*", "${local.kafka_topic}/${local.p}dead-letters",
        ]
      },
      { sid = "EnsureChangelogs", actions = ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopicDynamicConfiguration"], resources = ["${local.kafka_topic}/${local.p}${local.app}-*"] },
      {
        sid       = "Groups"
        actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
        resources = ["${local.kafka_group}/${local.app}-*", "${local.kafka_group}/${local.p}polls-catalog-*", "${local.kafka_group}/${local.p}${local.app}-*"]
      },
      { sid = "Transactions", actions = ["kafka-cluster:DescribeTransactionalId", "kafka-cluster:AlterTransactionalId"], resources = ["${local.kafka_txn}/${local.app}-*"] },
    ]
    projections = [
      local.connect,
      {
        sid       = "ReadResults"
        actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
        resources = ["${local.kafka_topic}/${local.p}tallies", "${local.kafka_topic}/${local.p}vote-decisions", "${local.kafka_topic}/${local.p}polls"]
      },
      { sid = "Groups", actions = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"], resources = ["${local.kafka_group}/${local.p}projections-*"] },
      { sid = "IdempotentProduce", actions = ["kafka-cluster:WriteDataIdempotently"], resources = [var.msk_cluster_arn] },
      { sid = "WriteDeadLetters", actions = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"], resources = ["${local.kafka_topic}/${local.p}dead-letters"] },
    ]
  }

  service_secrets = {
    ingest      = [aws_secretsmanager_secret.altcha.arn, var.redis_auth_secret_arn, var.cql_secret_arn]
    stream      = [var.cql_secret_arn]
    projections = [aws_secretsmanager_secret.mqtt_projections.arn, var.redis_auth_secret_arn, var.cql_secret_arn]
  }
}

data "aws_iam_policy_document" "service" {
  for_each = local.service_statements

  dynamic "statement" {
    for_each = each.value
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }

  dynamic "statement" {
    for_each = length(local.service_secrets[each.key]) > 0 ? [1] : []
    content {
      sid       = "ReadOwnSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.service_secrets[each.key]
    }
  }

  dynamic "statement" {
    for_each = length(local.service_secrets[each.key]) > 0 ? [1] : []
    content {
      sid       = "DecryptOwnSecrets"
      actions   = ["kms:Decrypt"]
      resources = [var.secrets_kms_key_arn]
    }
  }
}

module "service_role" {
  source            = "../irsa"
  for_each          = local.service_statements
  name              = "${var.name}-${each.key}"
  oidc_provider_arn = var.oidc_provider_arn
  oidc_issuer       = var.oidc_issuer
  namespace         = "votestream"
  service_account   = each.key
  policy_json       = data.aws_iam_policy_document.service[each.key].json
}

# The AWS Load Balancer Controller fills the ip target groups with pod addresses (TargetGroupBinding).
data "aws_iam_policy_document" "lb_controller" {
  statement {
    sid = "ReadOnly"
    actions = [
      "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces", "ec2:DescribeAvailabilityZones", "elasticloadbalancing:Describe*",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "RegisterTargets"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = values(var.target_group_arns)
  }
  statement {
    sid       = "NodeSecurityGroupRules"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
    resources = ["arn:aws:ec2:${var.region}:${data.aws_caller_identity.current.account_id}:security-group/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:Vpc"
      values   = ["arn:aws:ec2:${var.region}:${data.aws_caller_identity.current.account_id}:vpc/${var.vpc_id}"]
    }
  }
}

module "lb_controller_role" {
  source            = "../irsa"
  name              = "${var.name}-aws-load-balancer-controller"
  oidc_provider_arn = var.oidc_provider_arn
  oidc_issuer       = var.oidc_issuer
  namespace         = "kube-system"
  service_account   = "aws-load-balancer-controller"
  policy_json       = data.aws_iam_policy_document.lb_controller.json
}

# Data engineers and analytics jobs read the pseudonymous analytics-votes topic only (docs/trust.md): no grant on
# votes or vote-decisions, which carry raw voter ids and are read by the stream and projections roles alone.
# Attach this policy to the analysts' roles (SSO permission set or a job's IRSA role).
data "aws_iam_policy_document" "analytics_reader" {
  statement {
    sid       = "Connect"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [var.msk_cluster_arn]
  }
  statement {
    sid       = "ReadAnalytics"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    resources = ["${local.kafka_topic}/${local.p}analytics-votes"]
  }
  statement {
    sid       = "OwnGroups"
    actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
    resources = ["${local.kafka_group}/${local.p}analytics-*"]
  }
}

resource "aws_iam_policy" "analytics_reader" {
  name        = "${var.name}-analytics-reader"
  description = "Read the pseudonymous analytics-votes topic (never the raw votes or vote-decisions)."
  policy      = data.aws_iam_policy_document.analytics_reader.json
}

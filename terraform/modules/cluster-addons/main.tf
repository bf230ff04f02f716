# What the cluster needs besides the workloads:
#   metrics-server          resource metrics for the HorizontalPodAutoscalers (ingest scales on CPU)
#   Karpenter               nodes for pods that do not fit on the managed node groups (the groups are each
#                           pool's floor; Karpenter's NodePools carry the same labels and taints)
#   kube-prometheus-stack   Prometheus, Alertmanager, Grafana, with the alert rules and dashboards of
#                           deploy/monitoring (monitoring.tf)
# Custom resources (NodePool, EC2NodeClass, PrometheusRule) are rendered by Helm at apply time, never planned
# with kubernetes_manifest: their CRDs are installed by charts of the same apply.

variable "name" {
  description = "Name prefix."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster name."
  type        = string
}

variable "cluster_endpoint" {
  description = "EKS API endpoint (Karpenter's settings.clusterEndpoint)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "EKS OIDC provider ARN (IRSA)."
  type        = string
}

variable "oidc_issuer" {
  description = "EKS OIDC issuer without scheme."
  type        = string
}

variable "node_role_arn" {
  description = "IAM role of the nodes (Karpenter passes it to the instances it launches)."
  type        = string
}

variable "node_role_name" {
  description = "Name of the nodes' IAM role (EC2NodeClass.spec.role)."
  type        = string
}

variable "node_subnet_ids" {
  description = "Private subnets Karpenter launches into."
  type        = list(string)
}

variable "node_security_group_ids" {
  description = "Security groups of Karpenter's nodes (the cluster security group, like the managed nodes)."
  type        = list(string)
}

variable "node_groups" {
  description = "The pools (root variable node_groups): Karpenter gets one NodePool per pool with the same labels, taints and instance types."
  type = map(object({
    instance_types = list(string)
    min_size       = number
    desired_size   = number
    max_size       = number
    disk_gib       = number
    dedicated      = bool
  }))
}

variable "ebs_kms_key_arn" {
  description = "KMS key of the nodes' root volumes."
  type        = string
}

variable "karpenter_chart_version" {
  description = "Karpenter chart version."
  type        = string
}

variable "alert_receiver_webhook_secret_arn" {
  description = "Secrets Manager secret with the pager webhook URL Alertmanager posts to."
  type        = string
}

variable "monitoring_dir" {
  description = "Path of deploy/monitoring (rules/*.yaml, dashboards/*.json)."
  type        = string
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  # The pools' instance types (vCPUs) bound how far Karpenter may grow each pool: its max_size in nodes.
  vcpus = { "2xlarge" = 8, "4xlarge" = 16, "8xlarge" = 32, "xlarge" = 4 }
}

# ------------------------------------------------------------------------------------------ metrics-server

resource "helm_release" "metrics_server" {
  name       = "metrics-server"
  namespace  = "kube-system"
  repository = "https://kubernetes-sigs.github.io/metrics-server/"
  chart      = "metrics-server"
  version    = "3.12.2"

  values = [yamlencode({
    replicas            = 2
    nodeSelector        = { "votestream.io/pool" = "platform" }
    podDisruptionBudget = { enabled = true, maxUnavailable = 1 }
    args                = ["--kubelet-preferred-address-types=InternalIP"]
  })]
}

# ------------------------------------------------------------------------------------------ Karpenter

data "aws_iam_policy_document" "karpenter" {
  statement {
    sid = "Describe"
    actions = [
      "ec2:DescribeAvailabilityZones", "ec2:DescribeImages", "ec2:DescribeInstances",
      "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplates",
      "ec2:DescribeSecurityGroups", "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets", "pricing:GetProducts",
    ]
    resources = ["*"] # Describe* and pricing have no resource-level permissions
  }
  statement {
    sid     = "LaunchInThisRegion"
    actions = ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"]
    resources = [
      "arn:${local.partition}:ec2:${var.region}:${local.account}:*",
      "arn:${local.partition}:ec2:${var.region}::image/*",
      "arn:${local.partition}:ec2:${var.region}::snapshot/*",
    ]
  }
  statement {
    sid       = "TagOnCreate"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${var.region}:${local.account}:*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]
    }
  }
  # Only what Karpenter launched: it tags its instances and launch templates with karpenter.sh/nodepool.
  statement {
    sid       = "TerminateOwnNodes"
    actions   = ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate", "ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${var.region}:${local.account}:*"]
    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }
  statement {
    sid       = "PassNodeRole"
    actions   = ["iam:PassRole"]
    resources = [var.node_role_arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
  statement {
    sid = "InstanceProfiles"
    actions = [
      "iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile",
      "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
    ]
    resources = ["arn:${local.partition}:iam::${local.account}:instance-profile/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/kubernetes.io/cluster/${var.cluster_name}"
      values   = ["owned"]
    }
  }
  statement {
    sid       = "Cluster"
    actions   = ["eks:DescribeCluster"]
    resources = ["arn:${local.partition}:eks:${var.region}:${local.account}:cluster/${var.cluster_name}"]
  }
  statement {
    sid       = "AmiParameters"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:${var.region}::parameter/aws/service/*"]
  }
  # Root volumes encrypted with the ebs key: EC2 creates them on Karpenter's behalf.
  statement {
    sid       = "EncryptedRootVolumes"
    actions   = ["kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"]
    resources = [var.ebs_kms_key_arn]
  }
}

module "karpenter_role" {
  source            = "../irsa"
  name              = "${var.name}-karpenter"
  oidc_provider_arn = var.oidc_provider_arn
  oidc_issuer       = var.oidc_issuer
  namespace         = "kube-system"
  service_account   = "karpenter"
  policy_json       = data.aws_iam_policy_document.karpenter.json
}

resource "helm_release" "karpenter" {
  name       = "karpenter"
  namespace  = "kube-system"
  repository = "oci://public.ecr.aws/karpenter"
  chart      = "karpenter"
  version    = var.karpenter_chart_version

  values = [yamlencode({
    replicas     = 2
    nodeSelector = { "votestream.io/pool" = "platform" }
    settings = {
      clusterName     = var.cluster_name
      clusterEndpoint = var.cluster_endpoint
      # No interruption queue: every node is on-demand (no spot interruptions), and the queue would need SQS +
      # EventBridge rules; scheduled maintenance events are handled by the node groups' own replacement.
    }
    serviceAccount = {
      name        = "karpenter"
      annotations = { "eks.amazonaws.com/role-arn" = module.karpenter_role.role_arn }
    }
    controller = {
      resources = { requests = { cpu = "1", memory = "1Gi" }, limits = { memory = "1Gi" } }
    }
  })]

  depends_on = [helm_release.metrics_server]
}

# One NodePool per pool, same label and taint as its managed node group, so a pod that does not fit on the
# group's nodes gets a Karpenter node of the same kind. Limits keep Karpenter within the pool's max_size.
resource "helm_release" "karpenter_node_pools" {
  name      = "karpenter-node-pools"
  namespace = "kube-system"
  chart     = "${path.module}/../../../deploy/helm/karpenter-node-pools"

  values = [yamlencode({
    nodeClass = {
      name             = "votestream"
      role             = var.node_role_name
      subnetIds        = var.node_subnet_ids
      securityGroupIds = var.node_security_group_ids
      kmsKeyId         = var.ebs_kms_key_arn
    }
    pools = [
      for name, g in var.node_groups : {
        name          = name
        dedicated     = g.dedicated
        instanceTypes = g.instance_types
        cpuLimit      = g.max_size * lookup(local.vcpus, split(".", g.instance_types[0])[1], 16)
      }
    ]
  })]

  depends_on = [helm_release.karpenter]
}

output "karpenter_role_arn" {
  description = "IAM role of the Karpenter controller."
  value       = module.karpenter_role.role_arn
}

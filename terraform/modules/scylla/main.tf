# ScyllaDB on EC2 i4i: one rack per availability zone, nodes_per_az nodes per rack, the data center named
# after the region. With NetworkTopologyStrategy {dc: 3} every partition has one replica in each zone, so
# LOCAL_QUORUM (the services' consistency level, libs/runtime/src/cql.ts) survives the loss of a zone.
#
# Plain instances, not an autoscaling group: a ScyllaDB node owns data on its local NVMe, and replacing one
# is a deliberate operation (replace_node_first_boot + streaming), not something an ASG should do on its own.
# Each node gets a fixed private address, so the seed list is known before the nodes exist.

variable "name" {
  description = "Cluster name (also the CQL cluster_name)."
  type        = string
}

variable "instance_type" {
  description = "i4i instance type."
  type        = string
}

variable "nodes_per_az" {
  description = "Nodes per zone (= per rack)."
  type        = number
}

variable "ami_id" {
  description = "ScyllaDB AMI; empty = newest ScyllaDB 2025.1 AMI published by ScyllaDB."
  type        = string
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "subnet_ids" {
  description = "Data subnets, one per zone (index = rack)."
  type        = list(string)
}

variable "subnet_cidrs" {
  description = "CIDRs of the data subnets (fixed node addresses are taken from them)."
  type        = list(string)
}

variable "azs" {
  description = "Zones of the subnets, same order."
  type        = list(string)
}

variable "datacenter" {
  description = "CQL data center name (CQL_LOCAL_DC of the services)."
  type        = string
}

variable "client_security_group_ids" {
  description = "Security groups allowed to speak CQL (the EKS nodes)."
  type        = list(string)
}

variable "ebs_kms_key_arn" {
  description = "KMS key of the root volumes. The NVMe instance store is encrypted by the hardware (i4i: AES-256, keys never leave the instance)."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the TLS material and CQL credential secrets."
  type        = string
}

variable "cql_service_username" {
  description = "CQL role the services and the migration job log in as (CQL_USERNAME)."
  type        = string
  default     = "votestream"
}

variable "backup_bucket_kms_key_arn" {
  description = "KMS key of the backup bucket (scylla-manager backups)."
  type        = string
}

variable "manager_subnet_id" {
  description = "Private subnet (with a NAT route: it installs ScyllaDB Manager from ScyllaDB's package repository) of the ScyllaDB Manager instance."
  type        = string
}

variable "manager_instance_type" {
  description = "Instance type of ScyllaDB Manager (server + its own single-node ScyllaDB for its state)."
  type        = string
  default     = "i4i.large"
}

variable "backup_retention_days" {
  description = "Days a backup object (snapshot files and manifests) is kept in S3; ScyllaDB Manager's own retention (number of snapshots) applies first."
  type        = number
  default     = 35
}

data "aws_ami" "scylla" {
  count       = var.ami_id == "" ? 1 : 0
  most_recent = true
  owners      = ["158855661827"] # ScyllaDB's AMI publisher account
  filter {
    name   = "name"
    values = ["ScyllaDB 2025.1*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

data "aws_region" "current" {}

locals {
  ami = var.ami_id != "" ? var.ami_id : data.aws_ami.scylla[0].id
  nodes = flatten([
    for r in range(length(var.subnet_ids)) : [
      for n in range(var.nodes_per_az) : {
        key    = "${var.azs[r]}-${n}"
        rack   = r
        index  = n
        subnet = var.subnet_ids[r]
        az     = var.azs[r]
        # .10, .11, ... of each data subnet (the first 4 addresses are AWS-reserved; MSK and Redis take dynamic ones higher up).
        ip = cidrhost(var.subnet_cidrs[r], 10 + n)
      }
    ]
  ])
  # Two seeds per rack at most (seeds only bootstrap gossip).
  seeds = join(",", [for node in local.nodes : node.ip if node.index < 2])
}

resource "aws_security_group" "scylla" {
  name        = "${var.name}-scylla"
  description = "ScyllaDB: CQL from EKS, gossip/streaming between nodes"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "cql" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.scylla.id
  referenced_security_group_id = each.key
  ip_protocol                  = "tcp"
  from_port                    = 9042
  to_port                      = 9042
  description                  = "CQL from EKS (shard-aware port 19042 is not opened: cassandra-driver does not use it)"
}

resource "aws_vpc_security_group_ingress_rule" "internode" {
  for_each                     = { inter-node = 7000, inter-node-tls = 7001, api = 10000, prometheus = 9180 }
  security_group_id            = aws_security_group.scylla.id
  referenced_security_group_id = aws_security_group.scylla.id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  description                  = "ScyllaDB ${each.key} between nodes"
}

# ScyllaDB Manager talks to the agent on every node (HTTPS 10001, authenticated with the agent token).
resource "aws_vpc_security_group_ingress_rule" "manager_agent" {
  security_group_id            = aws_security_group.scylla.id
  referenced_security_group_id = aws_security_group.manager.id
  ip_protocol                  = "tcp"
  from_port                    = 10001
  to_port                      = 10001
  description                  = "ScyllaDB Manager to the manager agent"
}

resource "aws_vpc_security_group_ingress_rule" "manager_cql" {
  security_group_id            = aws_security_group.scylla.id
  referenced_security_group_id = aws_security_group.manager.id
  ip_protocol                  = "tcp"
  from_port                    = 9042
  to_port                      = 9042
  description                  = "ScyllaDB Manager health checks over CQL"
}

resource "aws_vpc_security_group_ingress_rule" "metrics" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.scylla.id
  referenced_security_group_id = each.key
  ip_protocol                  = "tcp"
  from_port                    = 9180
  to_port                      = 9180
  description                  = "Prometheus scrape from the monitoring stack on EKS"
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.scylla.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "Egress (S3 backups through the gateway endpoint; no internet route from data subnets)"
}

# Backups (ScyllaDB Manager, below) go to a private, KMS-encrypted, versioned bucket: an overwritten or deleted
# object (a bad manager task, a compromised node role) is recoverable for 30 days as a previous version.
resource "aws_s3_bucket" "backup" {
  bucket_prefix = "${var.name}-scylla-backup-"
}

resource "aws_s3_bucket_versioning" "backup" {
  bucket = aws_s3_bucket.backup.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_ownership_controls" "backup" {
  bucket = aws_s3_bucket.backup.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "backup" {
  bucket = aws_s3_bucket.backup.id
  rule {
    id     = "expire-old-backups"
    status = "Enabled"
    filter {}
    expiration {
      days = var.backup_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 3
    }
  }
  depends_on = [aws_s3_bucket_versioning.backup]
}

data "aws_iam_policy_document" "backup_bucket" {
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.backup.arn, "${aws_s3_bucket.backup.arn}/*"]
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

resource "aws_s3_bucket_policy" "backup" {
  bucket     = aws_s3_bucket.backup.id
  policy     = data.aws_iam_policy_document.backup_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.backup]
}

resource "aws_s3_bucket_public_access_block" "backup" {
  bucket                  = aws_s3_bucket.backup.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backup" {
  bucket = aws_s3_bucket.backup.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.backup_bucket_kms_key_arn
    }
  }
}

# Client and inter-node TLS: a private CA (its key lives only in the encrypted Terraform state) signs one
# certificate per node that names the node's fixed address, because the services dial the contact points by
# IP and verify the certificate against this CA (CQL_TLS_CA_FILE) and the address (Node's TLS hostname check).
resource "tls_private_key" "ca" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  private_key_pem       = tls_private_key.ca.private_key_pem
  is_ca_certificate     = true
  validity_period_hours = 24 * 365 * 5
  allowed_uses          = ["cert_signing", "crl_signing"]
  subject {
    common_name  = "${var.name} ScyllaDB CA"
    organization = "votestream"
  }
}

resource "tls_private_key" "node" {
  for_each    = { for n in local.nodes : n.key => n }
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "node" {
  for_each        = { for n in local.nodes : n.key => n }
  private_key_pem = tls_private_key.node[each.key].private_key_pem
  ip_addresses    = [each.value.ip]
  subject {
    common_name = each.value.ip
  }
}

resource "tls_locally_signed_cert" "node" {
  for_each              = { for n in local.nodes : n.key => n }
  cert_request_pem      = tls_cert_request.node[each.key].cert_request_pem
  ca_private_key_pem    = tls_private_key.ca.private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca.cert_pem
  validity_period_hours = 24 * 365 * 2
  allowed_uses          = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]
}

# Each node's key, certificate and the CA, read once at first boot by post_configuration_script.
resource "aws_secretsmanager_secret" "node_tls" {
  for_each   = { for n in local.nodes : n.key => n }
  name       = "${var.name}/scylla/tls/${each.key}"
  kms_key_id = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "node_tls" {
  for_each  = { for n in local.nodes : n.key => n }
  secret_id = aws_secretsmanager_secret.node_tls[each.key].id
  secret_string = jsonencode({
    crt = tls_locally_signed_cert.node[each.key].cert_pem
    key = tls_private_key.node[each.key].private_key_pem
    ca  = tls_self_signed_cert.ca.cert_pem
  })
}

# The services' CQL role (PasswordAuthenticator). Terraform makes the password; the role itself is created in
# ScyllaDB once, by an operator with the superuser (see terraform/README.md, gaps).
resource "random_password" "cql_service" {
  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "cql_service" {
  name       = "${var.name}/scylla/cql-${var.cql_service_username}"
  kms_key_id = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "cql_service" {
  secret_id     = aws_secretsmanager_secret.cql_service.id
  secret_string = random_password.cql_service.result
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-scylla-node"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "node" {
  statement {
    actions   = ["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"]
    resources = [aws_s3_bucket.backup.arn, "${aws_s3_bucket.backup.arn}/*"]
  }
  statement {
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.backup_bucket_kms_key_arn]
  }
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = concat([for s in aws_secretsmanager_secret.node_tls : s.arn], [aws_secretsmanager_secret.manager_agent_token.arn])
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "backup"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-scylla-node"
  role = aws_iam_role.node.name
}

resource "aws_instance" "node" {
  for_each               = { for n in local.nodes : n.key => n }
  ami                    = local.ami
  instance_type          = var.instance_type
  subnet_id              = each.value.subnet
  private_ip             = each.value.ip
  vpc_security_group_ids = [aws_security_group.scylla.id]
  iam_instance_profile   = aws_iam_instance_profile.node.name
  ebs_optimized          = true
  monitoring             = true # 1-minute CloudWatch metrics: a node's CPU steal or network limit shows within the show

  root_block_device {
    volume_type = "gp3"
    volume_size = 50
    encrypted   = true
    kms_key_id  = var.ebs_kms_key_arn
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  # ScyllaDB AMI user data (JSON): scylla.yaml overrides, then a script that pins the node's DC and rack.
  # The AMI's setup formats the NVMe instance store as XFS (RAID0 across devices) for /var/lib/scylla.
  user_data = jsonencode({
    scylla_yaml = {
      cluster_name                 = var.name
      endpoint_snitch              = "GossipingPropertyFileSnitch"
      seed_provider                = [{ class_name = "org.apache.cassandra.locator.SimpleSeedProvider", parameters = [{ seeds = local.seeds }] }]
      listen_address               = each.value.ip
      rpc_address                  = each.value.ip
      authenticator                = "PasswordAuthenticator"
      authorizer                   = "CassandraAuthorizer"
      native_transport_port        = 9042
      internode_compression        = "dc"
      server_encryption_options    = { internode_encryption = "all", certificate = "/etc/scylla/tls/node.crt", keyfile = "/etc/scylla/tls/node.key", truststore = "/etc/scylla/tls/ca.crt" }
      client_encryption_options    = { enabled = true, certificate = "/etc/scylla/tls/node.crt", keyfile = "/etc/scylla/tls/node.key" }
      enable_repair_based_node_ops = true
      commitlog_sync               = "periodic"
      commitlog_sync_period_in_ms  = 10000
      prometheus_port              = 9180
      api_address                  = "127.0.0.1"
    }
    start_scylla_on_first_boot = true
    post_configuration_script = base64encode(<<-SCRIPT
      #!/bin/bash
      set -euo pipefail
      printf 'dc=%s\nrack=%s\nprefer_local=true\n' '${var.datacenter}' '${each.value.az}' > /etc/scylla/cassandra-rackdc.properties
      # This node's TLS material (tls_locally_signed_cert.node, signed by this module's CA) from Secrets Manager.
      # Needs the aws CLI and jq on the AMI (not tried; see terraform/README.md).
      mkdir -p /etc/scylla/tls
      secret=$(aws secretsmanager get-secret-value --region '${data.aws_region.current.name}' \
        --secret-id '${var.name}/scylla/tls/${each.key}' --query SecretString --output text)
      jq -r .crt <<<"$secret" > /etc/scylla/tls/node.crt
      jq -r .key <<<"$secret" > /etc/scylla/tls/node.key
      jq -r .ca <<<"$secret" > /etc/scylla/tls/ca.crt
      chown -R scylla:scylla /etc/scylla/tls
      chmod 600 /etc/scylla/tls/node.key
      # ScyllaDB Manager agent (shipped on the ScyllaDB AMI): the token the manager authenticates with, and S3
      # in this region for backups (credentials from the instance role).
      token=$(aws secretsmanager get-secret-value --region '${data.aws_region.current.name}' \
        --secret-id '${aws_secretsmanager_secret.manager_agent_token.name}' --query SecretString --output text)
      printf 'auth_token: %s\ns3:\n  region: %s\n' "$token" '${data.aws_region.current.name}' > /etc/scylla-manager-agent/scylla-manager-agent.yaml
      chmod 640 /etc/scylla-manager-agent/scylla-manager-agent.yaml
      systemctl enable --now scylla-manager-agent
    SCRIPT
    )
  })

  tags = {
    Name                 = "${var.name}-scylla-${each.key}"
    "votestream.io/role" = "scylla"
    "votestream.io/rack" = each.value.az
  }

  # A node is replaced deliberately (runbook), never as a side effect of a user data or AMI change.
  lifecycle {
    ignore_changes = [ami, user_data]
  }

  # The first boot reads the node's TLS secret and the manager agent token.
  depends_on = [aws_secretsmanager_secret_version.node_tls, aws_secretsmanager_secret_version.manager_agent_token, aws_iam_role_policy.node]
}

# ------------------------------------------------------------------------------------------ ScyllaDB Manager
# Repairs and backups are scheduled, not remembered: ScyllaDB Manager runs a full repair every week (within
# gc_grace_seconds, 10 days by default, so no tombstone resurrects) and a backup to the bucket above every day,
# keeping 7 snapshots. Its server keeps its state in a single-node ScyllaDB on the same instance (the AMI's).
# Installed from ScyllaDB's package repository at first boot (not tried here; terraform/README.md).
# Licence: ScyllaDB Manager for clusters over 5 nodes is part of the ScyllaDB subscription (scylla_licensed).

resource "random_password" "manager_agent_token" {
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "manager_agent_token" {
  name       = "${var.name}/scylla/manager-agent-token"
  kms_key_id = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "manager_agent_token" {
  secret_id     = aws_secretsmanager_secret.manager_agent_token.id
  secret_string = random_password.manager_agent_token.result
}

resource "aws_security_group" "manager" {
  name        = "${var.name}-scylla-manager"
  description = "ScyllaDB Manager: reaches the nodes' agents and CQL; nothing reaches it"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "manager" {
  security_group_id = aws_security_group.manager.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "Agents, CQL, package repository (through NAT), Secrets Manager endpoint"
}

data "aws_iam_policy_document" "manager" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.manager_agent_token.arn, aws_secretsmanager_secret.cql_service.arn]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
  }
}

resource "aws_iam_role" "manager" {
  name               = "${var.name}-scylla-manager"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "manager" {
  name   = "secrets"
  role   = aws_iam_role.manager.id
  policy = data.aws_iam_policy_document.manager.json
}

resource "aws_iam_role_policy_attachment" "manager_ssm" {
  role       = aws_iam_role.manager.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "manager" {
  name = "${var.name}-scylla-manager"
  role = aws_iam_role.manager.name
}

resource "aws_instance" "manager" {
  ami                    = local.ami
  instance_type          = var.manager_instance_type
  subnet_id              = var.manager_subnet_id
  vpc_security_group_ids = [aws_security_group.manager.id]
  iam_instance_profile   = aws_iam_instance_profile.manager.name
  ebs_optimized          = true
  monitoring             = true

  root_block_device {
    volume_type = "gp3"
    volume_size = 50
    encrypted   = true
    kms_key_id  = var.ebs_kms_key_arn
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  # The AMI's local ScyllaDB (the manager's own state, not part of the cluster) starts as a one-node cluster.
  user_data = jsonencode({
    scylla_yaml                = { cluster_name = "${var.name}-manager", seed_provider = [{ class_name = "org.apache.cassandra.locator.SimpleSeedProvider", parameters = [{ seeds = "127.0.0.1" }] }], listen_address = "127.0.0.1", rpc_address = "127.0.0.1" }
    start_scylla_on_first_boot = true
    post_configuration_script = base64encode(<<-SCRIPT
      #!/bin/bash
      set -euo pipefail
      region='${data.aws_region.current.name}'
      get() { aws secretsmanager get-secret-value --region "$region" --secret-id "$1" --query SecretString --output text; }
      apt-get update -q && apt-get install -y -q scylla-manager-server scylla-manager-client
      systemctl enable --now scylla-manager
      until sctool version >/dev/null 2>&1; do sleep 5; done
      sctool cluster add --name '${var.name}' --host '${local.nodes[0].ip}' \
        --auth-token "$(get '${aws_secretsmanager_secret.manager_agent_token.name}')" \
        --username '${var.cql_service_username}' --password "$(get '${aws_secretsmanager_secret.cql_service.name}')"
      # Weekly full repair (Sunday 03:00 UTC), inside gc_grace_seconds; never during a show (runbook).
      sctool repair --cluster '${var.name}' --cron '0 3 * * 0' --intensity 1 --parallel 1
      # Daily backup of every keyspace, 7 snapshots kept.
      sctool backup --cluster '${var.name}' --location 's3:${aws_s3_bucket.backup.id}' --cron '0 4 * * *' --retention 7
    SCRIPT
    )
  })

  tags = {
    Name                 = "${var.name}-scylla-manager"
    "votestream.io/role" = "scylla-manager"
  }

  lifecycle {
    ignore_changes = [ami, user_data]
  }

  depends_on = [aws_instance.node, aws_iam_role_policy.manager]
}

output "contact_points" {
  description = "CQL contact points (CQL_CONTACT_POINTS), host:port, one seed per rack is enough for the driver."
  value       = [for n in local.nodes : "${n.ip}:9042"]
}

output "datacenter" {
  description = "CQL data center (CQL_LOCAL_DC)."
  value       = var.datacenter
}

output "replication" {
  description = "Keyspace replication for `npm run migrate` (CQL_REPLICATION)."
  value       = "{'class': 'NetworkTopologyStrategy', '${var.datacenter}': 3}"
}

output "ca_cert_pem" {
  description = "CA certificate of the nodes' CQL TLS certificates (CQL_TLS_CA_FILE of the services)."
  value       = tls_self_signed_cert.ca.cert_pem
}

output "cql_service_username" {
  description = "CQL role of the services (CQL_USERNAME)."
  value       = var.cql_service_username
}

output "cql_service_secret_arn" {
  description = "Secrets Manager secret with the services' CQL password (CQL_PASSWORD_FILE)."
  value       = aws_secretsmanager_secret.cql_service.arn
}

output "backup_bucket" {
  description = "S3 bucket of the ScyllaDB Manager backups."
  value       = aws_s3_bucket.backup.id
}

output "manager_instance_id" {
  description = "EC2 instance of ScyllaDB Manager (reach it with SSM Session Manager; sctool tasks)."
  value       = aws_instance.manager.id
}

output "security_group_id" {
  description = "Security group of the ScyllaDB nodes."
  value       = aws_security_group.scylla.id
}

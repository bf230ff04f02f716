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

# Backups (scylla-manager, or nodetool snapshot + upload) go to a private, KMS-encrypted bucket.
resource "aws_s3_bucket" "backup" {
  bucket_prefix = "${var.name}-scylla-backup-"
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
    resources = [for s in aws_secretsmanager_secret.node_tls : s.arn]
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

  # The first boot reads the node's TLS secret.
  depends_on = [aws_secretsmanager_secret_version.node_tls, aws_iam_role_policy.node]
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

output "security_group_id" {
  description = "Security group of the ScyllaDB nodes."
  value       = aws_security_group.scylla.id
}

# Amazon MSK across 3 zones: RF 3, min.insync.replicas 2, no unclean leader election, transactions on.
# Clients authenticate with IAM (port 9098, TLS) through IRSA; Apicurio, a JVM app without the IAM login
# module in its image, uses SCRAM-SHA-512 (port 9096, TLS). Plaintext and unauthenticated access are off.

resource "aws_msk_configuration" "this" {
  name           = var.name
  kafka_versions = [var.kafka_version]
  description    = "votestream: durability first (acks=all + min ISR 2), exactly-once transactions"

  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=3
    min.insync.replicas=2
    unclean.leader.election.enable=false
    num.partitions=12
    offsets.topic.replication.factor=3
    offsets.topic.num.partitions=50
    transaction.state.log.replication.factor=3
    transaction.state.log.min.isr=2
    transaction.state.log.num.partitions=50
    transaction.max.timeout.ms=900000
    transactional.id.expiration.ms=604800000
    producer.id.expiration.ms=86400000
    log.retention.hours=72
    log.segment.bytes=536870912
    message.max.bytes=2097152
    replica.lag.time.max.ms=30000
    group.initial.rebalance.delay.ms=3000
    allow.everyone.if.no.acl.found=false
    num.io.threads=16
    num.network.threads=8
    num.replica.fetchers=4
    compression.type=producer
  PROPERTIES
}

resource "aws_security_group" "brokers" {
  name        = "${var.name}-msk"
  description = "MSK brokers: Kafka over TLS from the EKS nodes only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "iam" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.brokers.id
  referenced_security_group_id = each.key
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
  description                  = "Kafka TLS + IAM from EKS"
}

resource "aws_vpc_security_group_ingress_rule" "scram" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.brokers.id
  referenced_security_group_id = each.key
  ip_protocol                  = "tcp"
  from_port                    = 9096
  to_port                      = 9096
  description                  = "Kafka TLS + SCRAM from EKS (Apicurio)"
}

resource "aws_vpc_security_group_egress_rule" "brokers" {
  security_group_id = aws_security_group.brokers.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "Broker egress (replication stays inside the SG; the data subnets have no internet route)"
}

resource "aws_cloudwatch_log_group" "brokers" {
  name              = "/votestream/${var.name}/msk"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  enhanced_monitoring    = "PER_TOPIC_PER_PARTITION"

  broker_node_group_info {
    instance_type   = var.instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.brokers.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.volume_gib
        provisioned_throughput {
          enabled           = true
          volume_throughput = var.volume_throughput_mibps
        }
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = var.kms_key_arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  client_authentication {
    unauthenticated = false
    sasl {
      iam   = true
      scram = true
    }
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.brokers.name
      }
    }
  }
}

# Storage grows before it fills: target 60% used, never above volume_gib_max.
resource "aws_appautoscaling_target" "storage" {
  service_namespace  = "kafka"
  scalable_dimension = "kafka:broker-storage:VolumeSize"
  resource_id        = aws_msk_cluster.this.arn
  min_capacity       = 1
  max_capacity       = var.volume_gib_max
}

resource "aws_appautoscaling_policy" "storage" {
  name               = "${var.name}-storage"
  service_namespace  = aws_appautoscaling_target.storage.service_namespace
  scalable_dimension = aws_appautoscaling_target.storage.scalable_dimension
  resource_id        = aws_appautoscaling_target.storage.resource_id
  policy_type        = "TargetTrackingScaling"

  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "KafkaBrokerStorageUtilization"
    }
    target_value = 60
  }
}

# SCRAM user of the schema registry (Apicurio's KafkaSQL storage). MSK requires the AmazonMSK_ prefix.
resource "random_password" "apicurio" {
  length  = 32
  special = false
}

resource "aws_secretsmanager_secret" "apicurio" {
  name       = "AmazonMSK_${var.name}_apicurio"
  kms_key_id = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "apicurio" {
  secret_id     = aws_secretsmanager_secret.apicurio.id
  secret_string = jsonencode({ username = "apicurio", password = random_password.apicurio.result })
}

resource "aws_msk_scram_secret_association" "this" {
  cluster_arn     = aws_msk_cluster.this.arn
  secret_arn_list = [aws_secretsmanager_secret.apicurio.arn]
  depends_on      = [aws_secretsmanager_secret_version.apicurio]
}

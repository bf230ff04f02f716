# The Kafka topics of votestream (libs/runtime/src/topics.ts and stream/src/topology.ts), created up front
# because auto.create.topics.enable=false. Partition counts of votes and vote-decisions equal the number of
# dedupe tasks; the stream's changelogs must be co-partitioned with their input (stream/src/topology.ts
# checks this at start-up and refuses to run otherwise). Partitions can grow later, never shrink, and growing
# votes re-keys voters to other tasks, so it is sized for the peak from day one.

variable "prefix" {
  description = "Topic prefix (TOPIC_PREFIX)."
  type        = string
}

variable "application_id" {
  description = "Stream application id (STREAM_APPLICATION_ID), part of the changelog names."
  type        = string
  default     = "votestream-stream"
}

variable "votes_partitions" {
  description = "Partitions of votes, vote-decisions and the dedupe-stage changelogs."
  type        = number
}

variable "tally_partitions" {
  description = "Partitions of tally-partials, tallies and the global tally changelog."
  type        = number
  default     = 12
}

variable "votes_retention_ms" {
  description = "Retention of votes and vote-decisions."
  type        = number
}

locals {
  delete = { "cleanup.policy" = "delete", "min.insync.replicas" = "2", "unclean.leader.election.enable" = "false" }
  compact = {
    "cleanup.policy"                 = "compact"
    "min.insync.replicas"            = "2"
    "unclean.leader.election.enable" = "false"
    "min.compaction.lag.ms"          = "60000"
  }

  topics = {
    votes = {
      partitions = var.votes_partitions
      config     = merge(local.delete, { "retention.ms" = tostring(var.votes_retention_ms), "compression.type" = "producer" })
    }
    vote-decisions = {
      partitions = var.votes_partitions
      config     = merge(local.delete, { "retention.ms" = tostring(var.votes_retention_ms) })
    }
    polls = {
      partitions = 3
      config     = local.compact
    }
    tally-partials = {
      partitions = var.tally_partitions
      config     = merge(local.delete, { "retention.ms" = "86400000" })
    }
    tallies = {
      partitions = var.tally_partitions
      config     = merge(local.delete, { "retention.ms" = "604800000" })
    }
    # Pseudonymous (docs/trust.md): kept 30 days, longer than the raw topics; its salts expire with them.
    analytics-votes = {
      partitions = var.votes_partitions
      config     = merge(local.delete, { "retention.ms" = "2592000000" })
    }
    # Records a consumer could not decode (poison only, few): 14 days for an operator to look after an alert.
    dead-letters = {
      partitions = 3
      config     = merge(local.delete, { "retention.ms" = "1209600000" })
    }
    "${var.application_id}-dedupe-store-changelog" = {
      partitions = var.votes_partitions
      config     = local.compact
    }
    "${var.application_id}-partial-tally-store-changelog" = {
      partitions = var.votes_partitions
      config     = local.compact
    }
    "${var.application_id}-global-tally-store-changelog" = {
      partitions = var.tally_partitions
      config     = local.compact
    }
    # The analytics stage keeps no state: only its task positions (co-partitioned with vote-decisions).
    "${var.application_id}-analytics-position-changelog" = {
      partitions = var.votes_partitions
      config     = local.compact
    }
  }
}

resource "kafka_topic" "this" {
  for_each           = local.topics
  name               = "${var.prefix}${each.key}"
  partitions         = each.value.partitions
  replication_factor = 3
  config             = each.value.config

  # Shrinking partitions is impossible and growing them re-keys voters: change them deliberately.
  lifecycle {
    prevent_destroy = true
  }
}

output "topic_names" {
  description = "Full topic names by short name."
  value       = { for k, t in kafka_topic.this : k => t.name }
}

# Apicurio Registry (SCRAM user "apicurio") keeps its storage journal in topics it creates itself
# (kafkasql-journal, kafkasql-snapshots) and reads them in its own consumer groups. With
# allow.everyone.if.no.acl.found=false a SCRAM principal can do only what these ACLs grant.
locals {
  apicurio_acls = {
    topic-all  = { resource_type = "Topic", resource_name = "kafkasql-", operation = "All" }
    group-read = { resource_type = "Group", resource_name = "apicurio", operation = "All" }
    group-tx   = { resource_type = "TransactionalID", resource_name = "apicurio", operation = "All" }
  }
}

resource "kafka_acl" "apicurio" {
  for_each                     = local.apicurio_acls
  resource_name                = each.value.resource_name
  resource_type                = each.value.resource_type
  resource_pattern_type_filter = "Prefixed"
  acl_principal                = "User:apicurio"
  acl_host                     = "*"
  acl_operation                = each.value.operation
  acl_permission_type          = "Allow"
}

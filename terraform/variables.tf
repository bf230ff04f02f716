# Production settings of votestream on AWS. Defaults are sized for the kata's peak: 250k votes/s and
# 300M voters (README.md in this folder and docs/capacity.md explain each number).

variable "region" {
  description = "AWS region. Must offer 3 availability zones, MSK, i4i instances and ElastiCache r7g."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like an AWS region name, e.g. us-east-1."
  }
}

variable "environment" {
  description = "Environment name, used in resource names and tags."
  type        = string
  default     = "production"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "environment must be 2-21 lowercase letters, digits or dashes."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC. A /16 leaves room for pods (VPC CNI gives every pod a VPC address)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /16 or larger."
  }
}

variable "availability_zone_count" {
  description = "Availability zones to spread over. Fixed at 3: Kafka RF 3 and CQL RF 3 place one replica per zone."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zone_count == 3
    error_message = "availability_zone_count must be 3 (one replica per zone for Kafka and ScyllaDB)."
  }
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach the EKS API endpoint publicly (operators, CI). Empty: private endpoint only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrnetmask(c))])
    error_message = "admin_cidrs must be IPv4 CIDRs."
  }
}

# ------------------------------------------------------------------------------------------------ EKS

variable "eks_version" {
  description = "Kubernetes version of the EKS control plane and managed node groups."
  type        = string
  default     = "1.31"

  validation {
    condition     = can(regex("^1\\.(2[89]|3[0-9])$", var.eks_version))
    error_message = "eks_version must be 1.28 or newer, e.g. 1.31."
  }
}

variable "node_groups" {
  description = <<-EOT
    Managed node groups, one per deployable so a noisy neighbour cannot starve the vote path.
    Each group is labelled votestream.io/pool=<name>; dedicated groups are tainted with the same key so only
    their workload lands there. Sizes per group are totals over the 3 zones (min/desired/max).
  EOT
  type = map(object({
    instance_types = list(string)
    min_size       = number
    desired_size   = number
    max_size       = number
    disk_gib       = number
    dedicated      = bool
  }))

  default = {
    # Express + KafkaJS, one Node process per pod (2 vCPU); ~6k votes/s per pod at the 202 path
    # (auth, proof of work check, Redis admission, batched produce) gives 42 pods at 250k/s; 60 with headroom.
    ingest = { instance_types = ["c7i.4xlarge", "c6i.4xlarge"], min_size = 6, desired_size = 15, max_size = 30, disk_gib = 50, dedicated = true }
    # One pod per stream task group; tasks = partitions of votes (96) plus the global tally stage.
    stream = { instance_types = ["m7i.4xlarge", "m6i.4xlarge"], min_size = 6, desired_size = 12, max_size = 24, disk_gib = 50, dedicated = true }
    # Receipts + tallies projectors (consumer group over vote-decisions and tallies), live page.
    projections = { instance_types = ["c7i.2xlarge", "c6i.2xlarge"], min_size = 3, desired_size = 9, max_size = 18, disk_gib = 50, dedicated = true }
    # EMQX replicant and core nodes; memory-heavy (~6 KiB per idle MQTT connection plus socket buffers).
    emqx = { instance_types = ["m7i.8xlarge", "m6i.8xlarge"], min_size = 6, desired_size = 15, max_size = 30, disk_gib = 100, dedicated = true }
    # Apicurio, AWS Load Balancer Controller, CoreDNS, metrics and log agents.
    platform = { instance_types = ["m7i.xlarge", "m6i.xlarge"], min_size = 3, desired_size = 3, max_size = 6, disk_gib = 50, dedicated = false }
  }

  validation {
    condition = alltrue([
      for k, g in var.node_groups :
      g.min_size >= 0 && g.min_size <= g.desired_size && g.desired_size <= g.max_size && g.disk_gib >= 20 && length(g.instance_types) > 0
    ])
    error_message = "Each node group needs min_size <= desired_size <= max_size, disk_gib >= 20 and at least one instance type."
  }

  validation {
    condition     = length(setsubtract(["ingest", "stream", "projections", "emqx", "platform"], keys(var.node_groups))) == 0
    error_message = "node_groups must define ingest, stream, projections, emqx and platform."
  }
}

# ------------------------------------------------------------------------------------------------ MSK

variable "msk_kafka_version" {
  description = "MSK Kafka version (check `aws kafka list-kafka-versions`). KafkaJS 2.2.4 is tested locally against Kafka 4.1."
  type        = string
  default     = "3.9.x"

  validation {
    condition     = can(regex("^[34]\\.[0-9]+\\.[0-9x](\\.kraft)?$", var.msk_kafka_version))
    error_message = "msk_kafka_version must be a 3.x or 4.x MSK version string such as 3.9.x."
  }
}

variable "msk_broker_count" {
  description = "Brokers in total; a multiple of 3 (equal per zone). 9 brokers carry ~270 MB/s of produce with RF 3 at half their capacity."
  type        = number
  default     = 9

  validation {
    condition     = var.msk_broker_count >= 3 && var.msk_broker_count % 3 == 0
    error_message = "msk_broker_count must be a multiple of 3 and at least 3."
  }
}

variable "msk_instance_type" {
  description = "MSK broker instance type."
  type        = string
  default     = "kafka.m7g.4xlarge"

  validation {
    condition     = can(regex("^kafka\\.(m5|m7g)\\.[0-9]*x?large$", var.msk_instance_type))
    error_message = "msk_instance_type must be an m5 or m7g MSK broker type (t3 cannot carry this load)."
  }
}

variable "msk_volume_gib" {
  description = "EBS volume per broker at creation (GiB); storage autoscaling grows it up to msk_volume_gib_max."
  type        = number
  default     = 6000

  validation {
    condition     = var.msk_volume_gib >= 1000 && var.msk_volume_gib <= 16384
    error_message = "msk_volume_gib must be between 1000 and 16384."
  }
}

variable "msk_volume_gib_max" {
  description = "Upper bound for broker storage autoscaling (GiB, MSK maximum 16384)."
  type        = number
  default     = 16384

  validation {
    condition     = var.msk_volume_gib_max >= 1000 && var.msk_volume_gib_max <= 16384
    error_message = "msk_volume_gib_max must be between 1000 and 16384."
  }
}

variable "msk_volume_throughput_mibps" {
  description = "Provisioned EBS throughput per broker (MiB/s). Each broker writes ~90 MiB/s at peak (own share plus replicas)."
  type        = number
  default     = 500

  validation {
    condition     = var.msk_volume_throughput_mibps >= 250 && var.msk_volume_throughput_mibps <= 1000
    error_message = "msk_volume_throughput_mibps must be between 250 and 1000."
  }
}

variable "topic_prefix" {
  description = "Prefix of every Kafka topic (TOPIC_PREFIX of the services; libs/runtime/src/topics.ts)."
  type        = string
  default     = "votestream."

  validation {
    condition     = can(regex("^[a-z0-9._-]{0,40}$", var.topic_prefix))
    error_message = "topic_prefix may hold lowercase letters, digits, dots, dashes and underscores (at most 40)."
  }
}

variable "votes_partitions" {
  description = "Partitions of votes and vote-decisions (= dedupe tasks). 96 tasks at ~2.6k votes/s each at peak."
  type        = number
  default     = 96

  validation {
    condition     = var.votes_partitions >= 12 && var.votes_partitions <= 1024 && var.votes_partitions % 3 == 0
    error_message = "votes_partitions must be a multiple of 3 between 12 and 1024 (it cannot shrink later)."
  }
}

variable "votes_retention_hours" {
  description = "Retention of the votes and vote-decisions topics: the window in which any state can be rebuilt by replay."
  type        = number
  default     = 72

  validation {
    condition     = var.votes_retention_hours >= 24 && var.votes_retention_hours <= 720
    error_message = "votes_retention_hours must be between 24 and 720 (dedupe state is rebuilt from changelogs, not from votes)."
  }
}

variable "manage_topics" {
  description = "Create the Kafka topics with the kafka provider (needs network reach to MSK: run from a runner in the VPC)."
  type        = bool
  default     = true
}

# ------------------------------------------------------------------------------------------- ScyllaDB

variable "scylla_instance_type" {
  description = "ScyllaDB node type: i4i (local NVMe, one shard per vCPU)."
  type        = string
  default     = "i4i.4xlarge"

  validation {
    condition     = can(regex("^i4i\\.[0-9]*x?large$", var.scylla_instance_type))
    error_message = "scylla_instance_type must be an i4i instance type."
  }
}

variable "scylla_nodes_per_az" {
  description = "ScyllaDB nodes per availability zone (one rack per zone; RF 3 keeps one replica per rack)."
  type        = number
  default     = 3

  validation {
    condition     = var.scylla_nodes_per_az >= 1 && var.scylla_nodes_per_az <= 30
    error_message = "scylla_nodes_per_az must be between 1 and 30."
  }
}

variable "scylla_ami_id" {
  description = "AMI of the ScyllaDB machine image (ScyllaDB publishes one per region and version). Empty: look up the newest ScyllaDB 2025.1 AMI owned by ScyllaDB."
  type        = string
  default     = ""

  validation {
    condition     = var.scylla_ami_id == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.scylla_ami_id))
    error_message = "scylla_ami_id must be empty or an AMI id."
  }
}

variable "cql_keyspace" {
  description = "CQL keyspace of votestream (CQL_KEYSPACE), created with NetworkTopologyStrategy RF 3 in the region's data center."
  type        = string
  default     = "votestream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,47}$", var.cql_keyspace))
    error_message = "cql_keyspace must be a lowercase CQL identifier."
  }
}

# ------------------------------------------------------------------------------------------------ Redis

variable "redis_node_type" {
  description = "ElastiCache node type of each shard's primary and replicas."
  type        = string
  default     = "cache.r7g.2xlarge"

  validation {
    condition     = can(regex("^cache\\.(r6g|r7g|m7g|r6gd)\\.[0-9]*x?large$", var.redis_node_type))
    error_message = "redis_node_type must be a Graviton r6g/r7g/m7g/r6gd ElastiCache node type."
  }
}

variable "redis_shards" {
  description = "Shards (node groups) in cluster mode. 16 x r7g.2xlarge hold the vote guards of a 300M-voter poll (~150 GB) and ~1.3M commands/s."
  type        = number
  default     = 16

  validation {
    condition     = var.redis_shards >= 3 && var.redis_shards <= 500
    error_message = "redis_shards must be between 3 and 500."
  }
}

variable "redis_replicas_per_shard" {
  description = "Replicas per shard, in other zones than the primary (Multi-AZ automatic failover needs at least 1)."
  type        = number
  default     = 2

  validation {
    condition     = var.redis_replicas_per_shard >= 1 && var.redis_replicas_per_shard <= 5
    error_message = "redis_replicas_per_shard must be between 1 and 5."
  }
}

# ----------------------------------------------------------------------------------------- Edge (API)

variable "api_domain_name" {
  description = "Public host name of the vote API (e.g. vote.example.com); its ACM certificate must exist in the region."
  type        = string
  default     = "vote.votestream.example"

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.api_domain_name))
    error_message = "api_domain_name must be a DNS name."
  }
}

variable "api_certificate_arn" {
  description = "ARN of the ACM certificate for api_domain_name (TLS terminates at the ALB)."
  type        = string
  default     = "arn:aws:acm:us-east-1:000000000000:certificate/replace-me"

  validation {
    condition     = can(regex("^arn:aws:acm:", var.api_certificate_arn))
    error_message = "api_certificate_arn must be an ACM certificate ARN."
  }
}

variable "mqtt_certificate_arn" {
  description = "ARN of the ACM certificate for the MQTT endpoint (TLS 8883 and WSS 443 terminate at the NLB)."
  type        = string
  default     = "arn:aws:acm:us-east-1:000000000000:certificate/replace-me"

  validation {
    condition     = can(regex("^arn:aws:acm:", var.mqtt_certificate_arn))
    error_message = "mqtt_certificate_arn must be an ACM certificate ARN."
  }
}

variable "waf_rate_limit_per_ip_5min" {
  description = "AWS WAF rate-based rule: requests per client IP per 5 minutes before blocking. High on purpose: carrier NAT puts thousands of voters behind one IP; per-voter limits live in ingest."
  type        = number
  default     = 20000

  validation {
    condition     = var.waf_rate_limit_per_ip_5min >= 100 && var.waf_rate_limit_per_ip_5min <= 2000000000
    error_message = "waf_rate_limit_per_ip_5min must be between 100 and 2e9 (AWS WAF limits)."
  }
}

variable "waf_vote_rate_limit_per_ip_5min" {
  description = "AWS WAF rate-based rule scoped to POST /v1/polls/*/votes, per client IP per 5 minutes."
  type        = number
  default     = 6000

  validation {
    condition     = var.waf_vote_rate_limit_per_ip_5min >= 100
    error_message = "waf_vote_rate_limit_per_ip_5min must be at least 100."
  }
}

variable "enable_shield_advanced" {
  description = "Protect the ALB and the MQTT NLB with AWS Shield Advanced (needs an active Shield Advanced subscription on the account)."
  type        = bool
  default     = true
}

variable "enable_cloudfront" {
  description = "Put CloudFront in front of the ALB (caches the public results GETs; POSTs pass through). Optional."
  type        = bool
  default     = false
}

# -------------------------------------------------------------------------------------------- Images

variable "image_repository" {
  description = "Container registry path of the votestream image (one image, three deployables; see Dockerfile)."
  type        = string
  default     = "000000000000.dkr.ecr.us-east-1.amazonaws.com/votestream"

  validation {
    condition     = length(var.image_repository) > 0
    error_message = "image_repository must not be empty."
  }
}

variable "image_tag" {
  description = "Tag of the votestream image to run (an immutable tag, e.g. the git commit)."
  type        = string
  default     = "replace-me"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,128}$", var.image_tag))
    error_message = "image_tag must be a valid image tag."
  }
}

variable "replicas" {
  description = "Pods per deployable at steady peak. ingest: 60 x 2 vCPU; stream: 48 dedupe pods (2 tasks each) + 3 tally/sink pods; projections: 24."
  type = object({
    ingest      = number
    stream      = number
    projections = number
  })
  default = {
    ingest      = 60
    stream      = 51
    projections = 24
  }

  validation {
    condition     = var.replicas.ingest >= 3 && var.replicas.stream >= 3 && var.replicas.projections >= 3
    error_message = "Each deployable runs at least 3 replicas (one per zone)."
  }
}

variable "emqx_chart_version" {
  description = "Version of the emqx/emqx Helm chart (EMQX 5.x)."
  type        = string
  default     = "5.8.6"

  validation {
    condition     = can(regex("^5\\.[0-9]+\\.[0-9]+$", var.emqx_chart_version))
    error_message = "emqx_chart_version must be a 5.x.y chart version."
  }
}

variable "emqx_replicas" {
  description = "EMQX nodes. ~3M subscribers per node on m7i.8xlarge; 12 nodes for 30M concurrent subscribers with one zone down leaving 8."
  type        = number
  default     = 12

  validation {
    condition     = var.emqx_replicas >= 3 && var.emqx_replicas % 3 == 0
    error_message = "emqx_replicas must be a multiple of 3 (even spread over zones)."
  }
}

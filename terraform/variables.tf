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
    # Arithmetic in docs/capacity.md section 5. ingest: 120 pods x 1.8 vCPU, 8 pods per 16-vCPU node = 15 nodes;
    # max covers the HPA's ceiling (180 pods = 23 nodes); Karpenter adds nodes beyond the group when pods wait.
    ingest = { instance_types = ["c7i.4xlarge", "c6i.4xlarge"], min_size = 6, desired_size = 15, max_size = 24, disk_gib = 50, dedicated = true }
    # 48 dedupe pods (1.8 vCPU, 6 GiB) at 8 per m7i.4xlarge = 6 nodes, + 3 tally/sink pods: 9 nodes, 3 per zone.
    stream = { instance_types = ["m7i.4xlarge", "m6i.4xlarge"], min_size = 6, desired_size = 9, max_size = 12, disk_gib = 50, dedicated = true }
    # 48 projections pods (1.8 vCPU) at 4 per c7i.2xlarge = 12 nodes.
    projections = { instance_types = ["c7i.2xlarge", "c6i.2xlarge"], min_size = 6, desired_size = 12, max_size = 18, disk_gib = 50, dedicated = true }
    # One EMQX node per m7i.8xlarge (memory for ~3M connections, 12.5 Gbps of network): 15 nodes.
    emqx = { instance_types = ["m7i.8xlarge", "m6i.8xlarge"], min_size = 15, desired_size = 15, max_size = 21, disk_gib = 100, dedicated = true }
    # Apicurio, controllers (load balancer, Karpenter), metrics-server, Prometheus (2 replicas, ~16 GiB each at
    # this fleet's series count), Alertmanager, Grafana, CoreDNS, log agents.
    platform = { instance_types = ["m7i.2xlarge", "m6i.2xlarge"], min_size = 3, desired_size = 3, max_size = 6, disk_gib = 100, dedicated = false }
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

variable "scylla_licensed" {
  description = "Set to true once the ScyllaDB subscription that covers this cluster is in place. The free tier of ScyllaDB (source-available, 2025.1 and later) stops at 50 vCPUs and 10 TB per cluster; the default fleet (9 x i4i.4xlarge = 144 vCPUs, 33.75 TB NVMe) is beyond it. ScyllaDB Manager beyond 5 nodes is covered by the same subscription."
  type        = bool
  default     = false
}

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

  # 3 zones x nodes x vCPUs of the type (i4i.<n>xlarge has 4n vCPUs; i4i.large 2, i4i.xlarge 4).
  validation {
    condition = var.scylla_licensed || 3 * var.scylla_nodes_per_az * (
      var.scylla_instance_type == "i4i.large" ? 2 : var.scylla_instance_type == "i4i.xlarge" ? 4 :
      4 * tonumber(trimsuffix(trimprefix(var.scylla_instance_type, "i4i."), "xlarge"))
    ) <= 50
    error_message = "This ScyllaDB cluster is larger than the free tier (50 vCPUs): confirm the ScyllaDB subscription with scylla_licensed = true, or size it down."
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
  description = "Public host name of the vote API (e.g. vote.example.com). No default: production names are chosen, not inherited."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.api_domain_name)) && !endswith(var.api_domain_name, ".example")
    error_message = "api_domain_name must be the real DNS name of the vote API (e.g. vote.example.com), not a placeholder."
  }
}

variable "api_certificate_arn" {
  description = "ARN of the ACM certificate (in var.region) that covers api_domain_name; TLS terminates at the ALB."
  type        = string

  validation {
    condition     = can(regex("^arn:aws:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}$", var.api_certificate_arn))
    error_message = "api_certificate_arn must be the ARN of an ACM certificate (arn:aws:acm:<region>:<account>:certificate/<uuid>)."
  }
}

variable "mqtt_domain_name" {
  description = "Public host name of the MQTT endpoint (e.g. live.example.com): what the live page, apps and TV graphics connect to, and the name the MQTT certificate is issued for. Point it (CNAME/alias) at the output mqtt_nlb_dns_name."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.mqtt_domain_name)) && !endswith(var.mqtt_domain_name, ".example")
    error_message = "mqtt_domain_name must be the real DNS name of the MQTT endpoint (e.g. live.example.com), not a placeholder."
  }
}

variable "mqtt_certificate_domain" {
  description = "Name of the ISSUED ACM certificate (in var.region) for the MQTT endpoint, if it is not mqtt_domain_name itself (e.g. *.example.com). The plan looks the certificate up by this name and fails unless it covers mqtt_domain_name."
  type        = string
  default     = null
}

variable "cloudfront_certificate_arn" {
  description = "ACM certificate in us-east-1 covering api_domain_name, for CloudFront (required when enable_cloudfront is true; CloudFront only reads certificates from us-east-1)."
  type        = string
  default     = null

  validation {
    condition     = var.cloudfront_certificate_arn == null || can(regex("^arn:aws:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]{36}$", var.cloudfront_certificate_arn))
    error_message = "cloudfront_certificate_arn must be an ACM certificate ARN in us-east-1 (CloudFront reads certificates only from there)."
  }
}

# ------------------------------------------------------------------------------ Voter identity (JWT)
# The identity provider that signs voter tokens. No defaults: the development values (issuer votestream-dev,
# a local key file) would make ingest refuse every production token, or accept tokens nobody should sign.

variable "jwt_jwks_url" {
  description = "HTTPS URL of the JWKS of the identity provider that signs voter tokens (JWT_JWKS_URL of ingest)."
  type        = string

  validation {
    condition     = can(regex("^https://[^/]+/.+", var.jwt_jwks_url)) && !strcontains(var.jwt_jwks_url, ".example/")
    error_message = "jwt_jwks_url must be the https:// URL of the identity provider's JWKS (e.g. https://id.example.com/.well-known/jwks.json), not a placeholder."
  }
}

variable "jwt_issuer" {
  description = "Expected `iss` of voter tokens (JWT_ISSUER of ingest): exactly what the identity provider writes."
  type        = string

  validation {
    condition     = length(var.jwt_issuer) > 0 && var.jwt_issuer != "votestream-dev"
    error_message = "jwt_issuer must be the production identity provider's issuer; votestream-dev is the local development issuer."
  }
}

variable "jwt_audience" {
  description = "Expected `aud` of voter tokens (JWT_AUDIENCE of ingest): the audience the identity provider issues tokens for this API with."
  type        = string

  validation {
    condition     = length(var.jwt_audience) > 0
    error_message = "jwt_audience must be the audience the identity provider puts in voter tokens for this API."
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
  description = "Container registry path of the votestream image (one image, three deployables; see Dockerfile), e.g. <account>.dkr.ecr.<region>.amazonaws.com/votestream."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+$", var.image_repository)) && !startswith(var.image_repository, "000000000000.")
    error_message = "image_repository must be a registry path such as 123456789012.dkr.ecr.us-east-1.amazonaws.com/votestream."
  }
}

variable "image_tag" {
  description = "Tag of the votestream image to run: an immutable tag (the git commit), never latest."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,128}$", var.image_tag)) && !contains(["latest", "replace-me"], var.image_tag)
    error_message = "image_tag must be an immutable image tag (e.g. the git commit), not latest or a placeholder."
  }
}

variable "replicas" {
  description = "Pods per deployable at steady peak (docs/capacity.md section 5). ingest: 120 (HPA up to 1.5x); stream: 48 dedupe pods (2 tasks each) + 3 tally/sink pods; projections: 48 (2 vote-decisions partitions each)."
  type = object({
    ingest      = number
    stream      = number
    projections = number
  })
  default = {
    ingest      = 120
    stream      = 51
    projections = 48
  }

  validation {
    condition     = var.replicas.ingest >= 3 && var.replicas.stream >= 3 && var.replicas.projections >= 3
    error_message = "Each deployable runs at least 3 replicas (one per zone)."
  }
}

variable "emqx_chart_version" {
  description = "Version of the emqx/emqx Helm chart (= EMQX version). 5.8.x is the last Apache-2.0 release that clusters without a licence; from 5.9 EMQX is one edition under the Business Source License and a cluster needs a licence (emqx_license_secret_arn)."
  type        = string
  default     = "5.8.6"

  validation {
    condition     = can(regex("^5\\.[0-9]+\\.[0-9]+$", var.emqx_chart_version))
    error_message = "emqx_chart_version must be a 5.x.y chart version."
  }

  validation {
    condition     = tonumber(split(".", var.emqx_chart_version)[1]) < 9 || var.emqx_license_secret_arn != null
    error_message = "EMQX 5.9 and later need a licence to run as a cluster: set emqx_license_secret_arn (a Secrets Manager secret holding the licence key) or stay on 5.8.x."
  }
}

variable "emqx_license_secret_arn" {
  description = "Secrets Manager secret holding the EMQX licence key (needed from EMQX 5.9 to cluster; null on 5.8.x)."
  type        = string
  default     = null
}

variable "emqx_replicas" {
  description = "EMQX nodes. ~3M subscribers per node on m7i.8xlarge: 30M concurrent subscribers through the loss of a zone need 10 surviving nodes, so 15 (5 per zone)."
  type        = number
  default     = 15

  validation {
    condition     = var.emqx_replicas >= 3 && var.emqx_replicas % 3 == 0
    error_message = "emqx_replicas must be a multiple of 3 (even spread over zones)."
  }
}

# ------------------------------------------------------------------------------------------- Accounts

variable "create_autoscaling_service_linked_role" {
  description = "Create AWSServiceRoleForAutoScaling (true on an account that has never had an Auto Scaling group): the EBS key policy names it, and KMS refuses a policy whose principal does not exist."
  type        = bool
  default     = false
}

# -------------------------------------------------------------------------------------- Logs and pre-warm

variable "log_retention_days" {
  description = "Retention of CloudWatch log groups (EKS control plane, MSK brokers, VPC flow logs) and of the ALB/NLB/WAF log buckets, in days. One year: abuse investigations and disputes about a show come months later."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value of at least one year (365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "alb_reserved_capacity_units" {
  description = "Load Balancer Capacity Units reserved on the vote API's ALB (pre-warming). 0 between shows; ~10,000 the day before a 250k votes/s show (docs/capacity.md section 6: 250k new TLS connections/s at 25 per LCU; ~3,000 with CloudFront in front). Billed per LCU-hour while set."
  type        = number
  default     = 0

  validation {
    condition     = var.alb_reserved_capacity_units == 0 || (var.alb_reserved_capacity_units >= 100 && var.alb_reserved_capacity_units <= 15000)
    error_message = "alb_reserved_capacity_units must be 0 (none) or between 100 and 15000."
  }
}

variable "nlb_reserved_capacity_units" {
  description = "Capacity units reserved on the MQTT NLB before a show (0 between shows). docs/capacity.md section 6: 30M subscribers need ~10,000 for connections and ~65,000 for the fan-out bytes at 2 messages/s."
  type        = number
  default     = 0

  validation {
    condition     = var.nlb_reserved_capacity_units >= 0 && var.nlb_reserved_capacity_units <= 100000
    error_message = "nlb_reserved_capacity_units must be between 0 and 100000."
  }
}

# --------------------------------------------------------------------------------------- Cluster add-ons

variable "karpenter_chart_version" {
  description = "Karpenter Helm chart version (oci://public.ecr.aws/karpenter/karpenter); must support the EKS version."
  type        = string
  default     = "1.3.3"

  validation {
    condition     = can(regex("^1\\.[0-9]+\\.[0-9]+$", var.karpenter_chart_version))
    error_message = "karpenter_chart_version must be a 1.x.y version (NodePool v1 API)."
  }
}

variable "alert_receiver_webhook_secret_arn" {
  description = "Secrets Manager secret holding the URL Alertmanager posts alerts to (the on-call pager's webhook). No default: alerts that go nowhere are no alerts."
  type        = string

  validation {
    condition     = can(regex("^arn:aws:secretsmanager:", var.alert_receiver_webhook_secret_arn))
    error_message = "alert_receiver_webhook_secret_arn must be the ARN of a Secrets Manager secret holding the pager webhook URL."
  }
}

variable "name" {
  description = "Name prefix."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "vpc_id" {
  description = "VPC id (for the AWS Load Balancer Controller)."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster name."
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

variable "msk_cluster_arn" {
  description = "MSK cluster ARN (IAM policies are scoped to its topics and groups)."
  type        = string
}

variable "kafka_brokers_iam" {
  description = "Bootstrap brokers, TLS + IAM."
  type        = string
}

variable "kafka_brokers_scram" {
  description = "Bootstrap brokers, TLS + SCRAM (Apicurio)."
  type        = string
}

variable "apicurio_secret_arn" {
  description = "Secrets Manager secret with Apicurio's SCRAM credentials."
  type        = string
}

variable "topic_prefix" {
  description = "Kafka topic prefix."
  type        = string
}

variable "stream_application_id" {
  description = "STREAM_APPLICATION_ID (consumer groups, transactional ids, changelogs)."
  type        = string
  default     = "votestream-stream"
}

variable "cql_contact_points" {
  description = "ScyllaDB contact points (host:port)."
  type        = list(string)
}

variable "cql_datacenter" {
  description = "ScyllaDB data center (CQL_LOCAL_DC)."
  type        = string
}

variable "cql_keyspace" {
  description = "CQL keyspace."
  type        = string
}

variable "cql_replication" {
  description = "Keyspace replication map for the migration job."
  type        = string
}

variable "cql_ca_cert_pem" {
  description = "CA certificate of the ScyllaDB nodes (mounted as CQL_TLS_CA_FILE)."
  type        = string
}

variable "cql_username" {
  description = "CQL role of the services and the migration job (CQL_USERNAME)."
  type        = string
}

variable "cql_secret_arn" {
  description = "Secrets Manager secret with that role's password (mounted as CQL_PASSWORD_FILE)."
  type        = string
}

variable "redis_endpoint" {
  description = "ElastiCache configuration endpoint."
  type        = string
}

variable "redis_auth_secret_arn" {
  description = "Secret holding the Redis AUTH token."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the service secrets."
  type        = string
}

variable "target_group_arns" {
  description = "ALB/NLB target groups to bind pods to (ingest, projections, emqx_mqtt, emqx_ws)."
  type        = map(string)
}

variable "image" {
  description = "votestream image (repository:tag)."
  type        = string
}

variable "replicas" {
  description = "Replicas of ingest, stream (dedupe pods + tally/sink pods) and projections."
  type = object({
    ingest      = number
    stream      = number
    projections = number
  })
}

variable "emqx_chart_version" {
  description = "emqx/emqx chart version."
  type        = string
}

variable "emqx_replicas" {
  description = "EMQX nodes."
  type        = number
}

variable "mqtt_public_ws_url" {
  description = "What browsers of the live page connect to (LIVE_MQTT_WS_URL)."
  type        = string
}

variable "api_public_url" {
  description = "Public base URL of the vote API, where the live page reads a poll's title and labels (LIVE_API_URL)."
  type        = string
}

variable "jwt_jwks_url" {
  description = "JWKS URL of the identity provider that signs voter tokens (JWT_JWKS_URL of ingest). No default."
  type        = string
}

variable "jwt_issuer" {
  description = "Expected iss of voter tokens (JWT_ISSUER of ingest). No default."
  type        = string
}

variable "jwt_audience" {
  description = "Expected aud of voter tokens (JWT_AUDIENCE of ingest). No default."
  type        = string
}

variable "client_address_source" {
  description = "CLIENT_ADDRESS_SOURCE of ingest: alb (X-Forwarded-For, TRUST_PROXY_HOPS) or cloudfront (CloudFront-Viewer-Address)."
  type        = string

  validation {
    condition     = contains(["alb", "cloudfront"], var.client_address_source)
    error_message = "client_address_source must be alb or cloudfront behind the AWS edge."
  }
}

variable "trust_proxy_hops" {
  description = "TRUST_PROXY_HOPS of ingest: proxies that append to X-Forwarded-For (the ALB: 1)."
  type        = number
}

variable "emqx_license_secret_arn" {
  description = "Secrets Manager secret with the EMQX licence key (EMQX >= 5.9 clusters); null on 5.8.x."
  type        = string
  default     = null
}

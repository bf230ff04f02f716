output "service_role_arns" {
  description = "IRSA role per service."
  value       = { for k, m in module.service_role : k => m.role_arn }
}

output "altcha_secret_arn" {
  description = "Secret of the ALTCHA HMAC key."
  value       = aws_secretsmanager_secret.altcha.arn
}

output "mqtt_projections_secret_arn" {
  description = "Secret of the projections MQTT password."
  value       = aws_secretsmanager_secret.mqtt_projections.arn
}

output "mqtt_publisher_url" {
  description = "MQTT_URL of projections: EMQX's authenticated in-cluster publisher listener."
  value       = local.mqtt_publisher_url
}

output "ingest_identity_env" {
  description = "Environment of ingest that terraform decides (JWT_*, CLIENT_ADDRESS_SOURCE, TRUST_PROXY_HOPS), for the votestream chart's values."
  value = {
    JWT_JWKS_URL          = var.jwt_jwks_url
    JWT_ISSUER            = var.jwt_issuer
    JWT_AUDIENCE          = var.jwt_audience
    CLIENT_ADDRESS_SOURCE = var.client_address_source
    TRUST_PROXY_HOPS      = tostring(var.trust_proxy_hops)
  }
}

output "audit_public_key_pem" {
  description = "Public key that verifies the audit checkpoints of final tallies (npm run audit -- verify --public-key)."
  value       = tls_private_key.audit.public_key_pem
}

output "analytics_reader_policy_arn" {
  description = "IAM policy that reads only the pseudonymous analytics-votes topic; attach it to analysts' roles."
  value       = aws_iam_policy.analytics_reader.arn
}

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

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

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

output "analytics_reader_policy_arn" {
  description = "IAM policy that reads only the pseudonymous analytics-votes topic; attach it to analysts' roles."
  value       = aws_iam_policy.analytics_reader.arn
}

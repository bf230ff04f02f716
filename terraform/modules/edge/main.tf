# The public edge:
#   vote API   Internet -> (CloudFront, optional) -> ALB :443 (TLS, AWS WAF, Shield Advanced) -> ingest pods :8080
#                                                                     /live/* -> projections pods :8090
#   live MQTT  Internet -> NLB :8883 (MQTT over TLS) and :443 (MQTT over WSS), Shield Advanced -> EMQX pods
# Target groups are of type ip: the AWS Load Balancer Controller keeps them filled with pod addresses through
# TargetGroupBinding objects (modules/platform), so Terraform owns the load balancers, WAF and Shield.

variable "name" {
  description = "Name prefix."
  type        = string
}

variable "vpc_id" {
  description = "VPC id."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets, one per zone."
  type        = list(string)
}

variable "pod_security_group_id" {
  description = "Security group of the EKS nodes and pods (the cluster security group)."
  type        = string
}

variable "api_certificate_arn" {
  description = "ACM certificate of the vote API."
  type        = string
}

variable "mqtt_certificate_arn" {
  description = "ACM certificate of the MQTT endpoint."
  type        = string
}

variable "waf_rate_limit_per_ip_5min" {
  description = "Requests per IP per 5 minutes, whole API."
  type        = number
}

variable "waf_vote_rate_limit_per_ip_5min" {
  description = "Vote POSTs per IP per 5 minutes."
  type        = number
}

variable "enable_shield_advanced" {
  description = "Protect the load balancers with Shield Advanced."
  type        = bool
}

variable "enable_cloudfront" {
  description = "Put CloudFront in front of the ALB."
  type        = bool
}

variable "logs_kms_key_arn" {
  description = "KMS key of the WAF log group."
  type        = string
}

# ------------------------------------------------------------------------------------------ ALB

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Vote API ALB: HTTPS from the internet, to ingest and projections pods"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS from voters"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_pods" {
  for_each                     = { ingest = 8080, projections = 8090 }
  security_group_id            = aws_security_group.alb.id
  referenced_security_group_id = var.pod_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  description                  = "ALB to ${each.key} pods"
}

resource "aws_vpc_security_group_ingress_rule" "pods_from_alb" {
  for_each                     = { ingest = 8080, projections = 8090 }
  security_group_id            = var.pod_security_group_id
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  description                  = "${each.key} pods from the ALB"
}

resource "aws_lb" "api" {
  name                       = "${var.name}-api"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  idle_timeout               = 30
  desync_mitigation_mode     = "strictest"
}

resource "aws_lb_target_group" "ingest" {
  name                 = "${var.name}-ingest"
  target_type          = "ip"
  port                 = 8080
  protocol             = "HTTP"
  protocol_version     = "HTTP1"
  vpc_id               = var.vpc_id
  deregistration_delay = 20 # ingest drains in SHUTDOWN_DRAIN_MS (15 s) after SIGTERM

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_target_group" "projections" {
  name                 = "${var.name}-projections"
  target_type          = "ip"
  port                 = 8090
  protocol             = "HTTP"
  vpc_id               = var.vpc_id
  deregistration_delay = 20

  health_check {
    path    = "/health"
    matcher = "200"
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.api_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.ingest.arn
  }
}

# Operational endpoints are never public: Prometheus scrapes pods directly inside the cluster.
resource "aws_lb_listener_rule" "hide_ops" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10

  action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/problem+json"
      status_code  = "404"
      message_body = "{\"type\":\"not_found\",\"title\":\"no such route\",\"status\":404}"
    }
  }

  condition {
    path_pattern {
      values = ["/metrics", "/readyz", "/healthz", "/health"]
    }
  }
}

resource "aws_lb_listener_rule" "live_page" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 20

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.projections.arn
  }

  condition {
    path_pattern {
      values = ["/live/*"]
    }
  }
}

# ------------------------------------------------------------------------------------------ WAF

resource "aws_wafv2_web_acl" "api" {
  name        = "${var.name}-api"
  description = "Vote API: IP reputation, common exploits, bot control, per-IP rate limits"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "ip-reputation"
    priority = 1
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "anonymous-ip"
    priority = 2
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAnonymousIpList"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "anonymous-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "common"
    priority = 3
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "common"
      sampled_requests_enabled   = true
    }
  }

  # Bot Control (common level): blocks self-identified and verified-bad bots, scrapers, HTTP libraries without
  # a browser signature. The SDK's own clients are apps, not browsers; the SDK sends a User-Agent that the
  # category rules let through. Targeted level is not enabled: at 250k req/s its per-request price dominates.
  rule {
    name     = "bot-control"
    priority = 4
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesBotControlRuleSet"
        managed_rule_group_configs {
          aws_managed_rules_bot_control_rule_set {
            inspection_level = "COMMON"
          }
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "bot-control"
      sampled_requests_enabled   = true
    }
  }

  # Rate-based rules are flood caps per client IP; the real one-vote rule is per voter (ingest + stream).
  rule {
    name     = "rate-per-ip"
    priority = 10
    action {
      block {
        custom_response {
          response_code = 429
        }
      }
    }
    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit_per_ip_5min
        aggregate_key_type = "IP"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "rate-per-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "vote-rate-per-ip"
    priority = 11
    action {
      block {
        custom_response {
          response_code = 429
        }
      }
    }
    statement {
      rate_based_statement {
        limit              = var.waf_vote_rate_limit_per_ip_5min
        aggregate_key_type = "IP"
        scope_down_statement {
          and_statement {
            statement {
              byte_match_statement {
                search_string         = "POST"
                positional_constraint = "EXACTLY"
                field_to_match {
                  method {}
                }
                text_transformation {
                  priority = 0
                  type     = "NONE"
                }
              }
            }
            statement {
              byte_match_statement {
                search_string         = "/votes"
                positional_constraint = "ENDS_WITH"
                field_to_match {
                  uri_path {}
                }
                text_transformation {
                  priority = 0
                  type     = "NONE"
                }
              }
            }
          }
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "vote-rate-per-ip"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name}-api"
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "api" {
  resource_arn = aws_lb.api.arn
  web_acl_arn  = aws_wafv2_web_acl.api.arn
}

# WAF logs: only blocked requests (sampling every allowed vote would cost more than it tells).
resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${var.name}-api"
  retention_in_days = 30
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_wafv2_web_acl_logging_configuration" "api" {
  resource_arn            = aws_wafv2_web_acl.api.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  logging_filter {
    default_behavior = "DROP"
    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"
      condition {
        action_condition {
          action = "BLOCK"
        }
      }
    }
  }
}

# ------------------------------------------------------------------------------------------ MQTT NLB

resource "aws_security_group" "nlb" {
  name        = "${var.name}-mqtt-nlb"
  description = "MQTT NLB: MQTT over TLS and WSS from the internet, to EMQX pods"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "nlb_in" {
  for_each          = { mqtts = 8883, wss = 443 }
  security_group_id = aws_security_group.nlb.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
  description       = "${each.key} from subscribers"
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_emqx" {
  for_each                     = { mqtt = 1883, ws = 8083 }
  security_group_id            = aws_security_group.nlb.id
  referenced_security_group_id = var.pod_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  description                  = "NLB to EMQX ${each.key}"
}

resource "aws_vpc_security_group_ingress_rule" "emqx_from_nlb" {
  for_each                     = { mqtt = 1883, ws = 8083 }
  security_group_id            = var.pod_security_group_id
  referenced_security_group_id = aws_security_group.nlb.id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  description                  = "EMQX ${each.key} from the NLB"
}

resource "aws_lb" "mqtt" {
  name                             = "${var.name}-mqtt"
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = var.public_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true
}

resource "aws_lb_target_group" "emqx" {
  for_each             = { mqtt = 1883, ws = 8083 }
  name                 = "${var.name}-emqx-${each.key}"
  target_type          = "ip"
  port                 = each.value
  protocol             = "TCP"
  vpc_id               = var.vpc_id
  deregistration_delay = 60
  # Long-lived subscriber connections: keep a client on its node; EMQX sessions are not shared between nodes.
  stickiness {
    enabled = true
    type    = "source_ip"
  }
}

resource "aws_lb_listener" "mqtt" {
  for_each          = { mqtt = 8883, ws = 443 }
  load_balancer_arn = aws_lb.mqtt.arn
  port              = each.value
  protocol          = "TLS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.mqtt_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.emqx[each.key].arn
  }
}

# ------------------------------------------------------------------------------------------ Shield

resource "aws_shield_protection" "api" {
  count        = var.enable_shield_advanced ? 1 : 0
  name         = "${var.name}-api-alb"
  resource_arn = aws_lb.api.arn
}

resource "aws_shield_protection" "mqtt" {
  count        = var.enable_shield_advanced ? 1 : 0
  name         = "${var.name}-mqtt-nlb"
  resource_arn = aws_lb.mqtt.arn
}

resource "aws_shield_application_layer_automatic_response" "api" {
  count        = var.enable_shield_advanced ? 1 : 0
  resource_arn = aws_lb.api.arn
  action       = "COUNT"
  depends_on   = [aws_shield_protection.api, aws_wafv2_web_acl_association.api]
}

# ------------------------------------------------------------------------------------------ CloudFront (optional)

resource "aws_cloudfront_distribution" "api" {
  count           = var.enable_cloudfront ? 1 : 0
  enabled         = true
  comment         = "${var.name} vote API: edge TLS and DDoS absorption; caching off (totals change every second, votes must reach ingest)"
  price_class     = "PriceClass_All"
  is_ipv6_enabled = true

  origin {
    domain_name = aws_lb.api.dns_name
    origin_id   = "alb"
    custom_origin_config {
      http_port              = 80
      https_port             = 443
      origin_protocol_policy = "https-only"
      origin_ssl_protocols   = ["TLSv1.2"]
    }
  }

  default_cache_behavior {
    target_origin_id       = "alb"
    viewer_protocol_policy = "https-only"
    allowed_methods        = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
    cached_methods         = ["GET", "HEAD"]
    # AWS managed policies: CachingDisabled and AllViewerExceptHostHeader.
    cache_policy_id          = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    origin_request_policy_id = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
  }
}

output "alb_arn" {
  description = "ALB ARN."
  value       = aws_lb.api.arn
}

output "alb_dns_name" {
  description = "ALB DNS name (point api_domain_name at it, or at CloudFront)."
  value       = aws_lb.api.dns_name
}

output "mqtt_dns_name" {
  description = "NLB DNS name of the MQTT endpoint."
  value       = aws_lb.mqtt.dns_name
}

output "target_group_arns" {
  description = "Target groups the AWS Load Balancer Controller binds pods to."
  value = {
    ingest      = aws_lb_target_group.ingest.arn
    projections = aws_lb_target_group.projections.arn
    emqx_mqtt   = aws_lb_target_group.emqx["mqtt"].arn
    emqx_ws     = aws_lb_target_group.emqx["ws"].arn
  }
}

output "web_acl_arn" {
  description = "WAF web ACL of the vote API."
  value       = aws_wafv2_web_acl.api.arn
}

output "cloudfront_domain_name" {
  description = "CloudFront domain, when enabled."
  value       = var.enable_cloudfront ? aws_cloudfront_distribution.api[0].domain_name : null
}

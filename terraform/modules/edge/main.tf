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

variable "mqtt_domain_name" {
  description = "Public host name of the MQTT endpoint (what clients dial and what the certificate must name)."
  type        = string
}

variable "mqtt_certificate_domain" {
  description = "Name the MQTT certificate was issued for: mqtt_domain_name itself, or a wildcard covering it."
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

variable "access_logs_bucket" {
  description = "S3 bucket of the ALB (prefix alb/) and NLB (prefix nlb/) access logs (modules/logs)."
  type        = string
}

variable "waf_logs_bucket_arn" {
  description = "S3 bucket (aws-waf-logs-*) of the WAF full logs (modules/logs)."
  type        = string
}

variable "alb_reserved_capacity_units" {
  description = "ALB Load Balancer Capacity Units reserved ahead of a show (0: none). See docs/capacity.md for the arithmetic."
  type        = number
}

variable "nlb_reserved_capacity_units" {
  description = "NLB capacity units reserved ahead of a show (0: none)."
  type        = number
}

variable "cloudfront_certificate_arn" {
  description = "ACM certificate (us-east-1) of api_domain_name for CloudFront; required when enable_cloudfront."
  type        = string
}

variable "api_domain_name" {
  description = "Public host name of the vote API (CloudFront alias)."
  type        = string
}

variable "sdk_client_header_prefix" {
  description = "Prefix of the X-Votestream-Client header the voter SDK sends (votestream-sdk/<version>)."
  type        = string
}

# ------------------------------------------------------------------------------------------ ALB

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Vote API ALB: HTTPS from the internet, to ingest and projections pods"
  vpc_id      = var.vpc_id
}

# With CloudFront in front, the ALB accepts only CloudFront's origin-facing addresses: otherwise a client could
# skip the edge and forge the CloudFront-Viewer-Address header ingest reads its client address from.
data "aws_ec2_managed_prefix_list" "cloudfront" {
  count = var.enable_cloudfront ? 1 : 0
  name  = "com.amazonaws.global.cloudfront.origin-facing"
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = var.enable_cloudfront ? null : "0.0.0.0/0"
  prefix_list_id    = var.enable_cloudfront ? data.aws_ec2_managed_prefix_list.cloudfront[0].id : null
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = var.enable_cloudfront ? "HTTPS from CloudFront only" : "HTTPS from voters"
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

  # Every request (client address, TLS, target, status, WAF action, timings): what an abuse investigation needs.
  access_logs {
    enabled = true
    bucket  = var.access_logs_bucket
    prefix  = "alb"
  }

  # Pre-warming: reserved LCUs make the ALB hold the show's capacity before the first spike instead of scaling
  # into it (docs/capacity.md, docs/runbook.md "before the show"). Billed while set: the runbook sets it the day
  # before and back to 0 after.
  dynamic "minimum_load_balancer_capacity" {
    for_each = var.alb_reserved_capacity_units > 0 ? [1] : []
    content {
      capacity_units = var.alb_reserved_capacity_units
    }
  }
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
    path    = "/readyz"
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

  # Known bad inputs (Log4j JNDI lookups, exploit paths): cheap, no false positives on JSON votes.
  rule {
    name     = "known-bad-inputs"
    priority = 4
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  # Bot Control (common level) judges what is NOT the voter SDK: browsers (the live page), scrapers, scripts.
  # The SDK runs inside mobile apps, whose HTTP stacks (OkHttp, CFNetwork) AWS lists as known false positives of
  # SignalNonBrowserUserAgent and CategoryHttpLibrary. So:
  #   - requests that say they are the SDK (X-Votestream-Client: votestream-sdk/<version>) are scoped out: what
  #     judges them is what the app proves at ingest (the identity provider's signed JWT, a solved proof of work
  #     per vote, the app attestation token in X-Votestream-Attestation kept for later checking, per-voter and
  #     per-network rate limits, one vote per voter in the stream). Claiming to be the SDK buys a bot nothing:
  #     it only moves it from this rule group to those checks, which a browser-less script must pass anyway.
  #   - for everything else the two non-browser rules only count (they add labels), and the next rule blocks a
  #     labelled request only on the vote and challenge paths; results GETs and the live page stay reachable.
  # Targeted level is not enabled: at 500k requests/s its per-request price dominates the edge bill.
  rule {
    name     = "bot-control"
    priority = 5
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
        rule_action_override {
          name = "SignalNonBrowserUserAgent"
          action_to_use {
            count {}
          }
        }
        rule_action_override {
          name = "CategoryHttpLibrary"
          action_to_use {
            count {}
          }
        }
        scope_down_statement {
          not_statement {
            statement {
              byte_match_statement {
                search_string         = var.sdk_client_header_prefix
                positional_constraint = "STARTS_WITH"
                field_to_match {
                  single_header {
                    name = "x-votestream-client"
                  }
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
      metric_name                = "bot-control"
      sampled_requests_enabled   = true
    }
  }

  # A script or HTTP library that does not identify as the SDK may read results, but not vote or take challenges.
  rule {
    name     = "non-browser-off-vote-path"
    priority = 6
    action {
      block {
        custom_response {
          response_code            = 403
          custom_response_body_key = "edge-refused"
        }
      }
    }
    statement {
      and_statement {
        statement {
          or_statement {
            statement {
              label_match_statement {
                scope = "LABEL"
                key   = "awswaf:managed:aws:bot-control:signal:non_browser_user_agent"
              }
            }
            statement {
              label_match_statement {
                scope = "LABEL"
                key   = "awswaf:managed:aws:bot-control:bot:category:http_library"
              }
            }
          }
        }
        statement {
          or_statement {
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
            statement {
              byte_match_statement {
                search_string         = "/v1/challenge"
                positional_constraint = "STARTS_WITH"
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
      metric_name                = "non-browser-off-vote-path"
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

  custom_response_body {
    key          = "edge-refused"
    content_type = "APPLICATION_JSON"
    content      = "{\"type\":\"about:blank\",\"title\":\"Refused at the edge: use the votestream SDK\",\"status\":403,\"code\":\"edge_refused\"}"
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

# WAF logs: every request, allowed or not (an abuse investigation needs the traffic that got through: which
# networks voted, with which labels), straight to S3 (an order of magnitude cheaper per GB than CloudWatch Logs
# at 500k requests/s; docs/capacity.md). The voter's bearer token is redacted at the source.
resource "aws_wafv2_web_acl_logging_configuration" "api" {
  resource_arn            = aws_wafv2_web_acl.api.arn
  log_destination_configs = [var.waf_logs_bucket_arn]

  redacted_fields {
    single_header {
      name = "authorization"
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

# The certificate is found by the name clients dial, so the NLB cannot serve a certificate for another host: the
# live page connects to wss://<mqtt_domain_name>/mqtt, never to the NLB's AWS name.
data "aws_acm_certificate" "mqtt" {
  domain      = var.mqtt_certificate_domain
  statuses    = ["ISSUED"]
  most_recent = true

  lifecycle {
    postcondition {
      condition = (
        self.domain == var.mqtt_domain_name ||
        (startswith(self.domain, "*.") && endswith(var.mqtt_domain_name, substr(self.domain, 1, -1)) &&
        length(split(".", var.mqtt_domain_name)) == length(split(".", self.domain)))
      )
      error_message = "The MQTT certificate must name mqtt_domain_name (or be a one-level wildcard covering it)."
    }
  }
}

resource "aws_lb" "mqtt" {
  name                             = "${var.name}-mqtt"
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = var.public_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true

  # One record per TLS connection (client address, TLS version, bytes, duration).
  access_logs {
    enabled = true
    bucket  = var.access_logs_bucket
    prefix  = "nlb"
  }

  dynamic "minimum_load_balancer_capacity" {
    for_each = var.nlb_reserved_capacity_units > 0 ? [1] : []
    content {
      capacity_units = var.nlb_reserved_capacity_units
    }
  }
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
  certificate_arn   = data.aws_acm_certificate.mqtt.arn

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
    # AWS managed policies: CachingDisabled, SecurityHeadersPolicy, AllViewerAndCloudFrontHeaders-2022-06.
    cache_policy_id = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    # AWS managed SecurityHeadersPolicy (HSTS, X-Content-Type-Options, frame options, referrer policy).
    response_headers_policy_id = "67f7725c-6f97-4210-82d7-5512b31e9d03"
    # AllViewerAndCloudFrontHeaders-2022-06 (not AllViewerExceptHostHeader): it forwards the viewer's Host
    # (api_domain_name), so CloudFront checks the ALB's certificate against the name it was issued for (without
    # Host it checks it against the ALB's AWS name and fails), and the CloudFront headers, among them
    # CloudFront-Viewer-Address, which ingest reads the voter's address from (CLIENT_ADDRESS_SOURCE=cloudfront).
    origin_request_policy_id = "33f36d7e-f396-46d9-90e0-52428a34d9dc"
  }

  aliases = [var.api_domain_name]

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  # Voters reach the API under its own name: the us-east-1 certificate of api_domain_name, SNI, TLS 1.2+.
  viewer_certificate {
    acm_certificate_arn      = var.cloudfront_certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }

  lifecycle {
    precondition {
      condition     = var.cloudfront_certificate_arn != null
      error_message = "enable_cloudfront needs cloudfront_certificate_arn: an ACM certificate in us-east-1 covering api_domain_name."
    }
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

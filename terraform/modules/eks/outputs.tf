output "cluster_name" {
  description = "EKS cluster name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_ca_data" {
  description = "Base64 cluster CA certificate."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Security group EKS attaches to the control plane and to managed nodes; pods use the node's."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (IRSA)."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "oidc_issuer" {
  description = "Issuer URL without https:// (IRSA trust conditions)."
  value       = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

output "node_role_arn" {
  description = "IAM role of the managed nodes."
  value       = aws_iam_role.node.arn
}

output "node_role_name" {
  description = "Name of the nodes' IAM role (Karpenter's EC2NodeClass launches with it)."
  value       = aws_iam_role.node.name
}

output "node_security_group_ids" {
  description = "Security groups of the nodes (the cluster security group); Karpenter's nodes get the same."
  value       = [aws_eks_cluster.this.vpc_config[0].cluster_security_group_id]
}

output "subnet_ids" {
  description = "Private subnets of the nodes (Karpenter launches into the same)."
  value       = var.subnet_ids
}

output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "VPC CIDR."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets (ALB, NLB, NAT), one per zone."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (EKS nodes and pods), one per zone."
  value       = aws_subnet.private[*].id
}

output "data_subnet_ids" {
  description = "Data subnets (MSK, ScyllaDB, ElastiCache), one per zone, no internet route."
  value       = aws_subnet.data[*].id
}

output "private_subnet_cidrs" {
  description = "CIDRs of the private subnets."
  value       = aws_subnet.private[*].cidr_block
}

output "data_subnet_cidrs" {
  description = "CIDRs of the data subnets (ScyllaDB takes fixed addresses from them)."
  value       = aws_subnet.data[*].cidr_block
}

terraform {
  # 1.9: variable validations that refer to other variables (licences, sizes).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.82" # minimum_load_balancer_capacity (LCU reservation) on aws_lb
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.35"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    # Secret rotation on a schedule without Lambda (no serverless): time_rotating ids are keepers of the secrets.
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
    # Kafka topics on MSK (IAM auth). Needs network reach to the brokers: run from a runner inside the VPC.
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.8"
    }
  }

  # State in S3 with locking; the bucket and table are created once, outside this configuration.
  # terraform init -backend-config="bucket=..." -backend-config="dynamodb_table=..." -backend-config="region=..."
  backend "s3" {
    key     = "votestream/production.tfstate"
    encrypt = true
  }
}

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
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

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project     = "votestream"
      environment = var.environment
      managed-by  = "terraform"
    }
  }
}

# The Kubernetes and Helm providers talk to the EKS cluster this configuration creates; the token comes
# from `aws eks get-token` at plan/apply time, so no long-lived credentials are stored.
provider "kubernetes" {
  host                   = module.eks.cluster_endpoint
  cluster_ca_certificate = base64decode(module.eks.cluster_ca_data)

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
  }
}

provider "helm" {
  kubernetes {
    host                   = module.eks.cluster_endpoint
    cluster_ca_certificate = base64decode(module.eks.cluster_ca_data)

    exec {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
    }
  }
}

# Topics are created with IAM authentication over TLS (port 9098), as the services connect.
provider "kafka" {
  bootstrap_servers = split(",", module.msk.bootstrap_brokers_iam)
  tls_enabled       = true
  sasl_mechanism    = "aws-iam"
  sasl_aws_region   = var.region
}

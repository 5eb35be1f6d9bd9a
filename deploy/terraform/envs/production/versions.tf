terraform {
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90"
    }
  }

  # State in S3, encrypted, locked: it holds the Redis AUTH token and the broker password.
  # terraform init -backend-config="bucket=..." -backend-config="key=task-api/production.tfstate" \
  #   -backend-config="region=..." -backend-config="use_lockfile=true"
  backend "s3" {
    encrypt = true
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "task-api"
      Environment = "production"
      ManagedBy   = "terraform"
    }
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "availability_zones" {
  description = "Zones of the VPC (two or more; the broker's cluster uses three)."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "vpc_cidr_block" {
  description = "The VPC's range."
  type        = string
  default     = "10.20.0.0/16"
}

variable "image" {
  description = "The API image: ghcr.io/OWNER/task-api:VERSION."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate of the API's host name."
  type        = string
}

variable "db_instance_class" {
  description = "RDS instance class (the seed's db.t3.large)."
  type        = string
  default     = "db.t3.large"
}

variable "cache_node_type" {
  description = "ElastiCache node type (the seed's cache.t3.small)."
  type        = string
  default     = "cache.t3.small"
}

variable "redis_auth_token" {
  description = "Redis AUTH token: TF_VAR_redis_auth_token, never in a file."
  type        = string
  sensitive   = true
}

variable "mq_password" {
  description = "The broker user's password: TF_VAR_mq_password, never in a file."
  type        = string
  sensitive   = true
}

variable "mail_from" {
  description = "MAIL_FROM of notification emails."
  type        = string
  default     = "task-api <no-reply@example.com>"
}

variable "cors_origins" {
  description = "CORS_ORIGINS: browser origins allowed to call the API (empty: CORS off)."
  type        = string
  default     = ""
}

variable "name" {
  description = "Replication group id."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "The data subnets, in two or more zones."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups admitted to port 6379 (the API tasks)."
  type        = list(string)
}

variable "engine_version" {
  description = "Redis version (CI runs Redis 7)."
  type        = string
  default     = "7.1"
}

variable "node_type" {
  description = "Node type (the seed's cache.t3.small)."
  type        = string
  default     = "cache.t3.small"
}

variable "num_cache_clusters" {
  description = "Nodes: a primary and replicas, at least 2 for automatic failover."
  type        = number
  default     = 2

  validation {
    condition     = var.num_cache_clusters >= 2
    error_message = "Automatic failover needs a replica: at least 2 nodes."
  }
}

variable "auth_token" {
  description = "Redis AUTH token (16 to 128 characters), from TF_VAR_redis_auth_token; the same goes into the REDIS_URL secret."
  type        = string
  sensitive   = true
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

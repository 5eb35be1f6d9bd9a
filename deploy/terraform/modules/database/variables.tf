variable "name" {
  description = "Identifier of the primary (replicas: <name>-replica-N)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "The data subnets, in two or more zones (Multi-AZ)."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups admitted to port 5432 (the API tasks)."
  type        = list(string)
}

variable "engine_major_version" {
  description = "PostgreSQL major version (what CI tests against: 15)."
  type        = string
  default     = "15"
}

variable "instance_class" {
  description = "Instance class of the primary and the replicas (the seed's db.t3.large)."
  type        = string
  default     = "db.t3.large"
}

variable "allocated_storage_gb" {
  description = "Initial storage."
  type        = number
  default     = 100
}

variable "max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling."
  type        = number
  default     = 500
}

variable "database_name" {
  description = "The database created with the instance (the monolith's; the split's are created by SQL)."
  type        = string
  default     = "task_api"
}

variable "master_username" {
  description = "Master user; its password is managed by RDS in Secrets Manager."
  type        = string
  default     = "task_api_admin"
}

variable "replica_count" {
  description = "Read replicas."
  type        = number
  default     = 1
}

variable "backup_retention_days" {
  description = "Automated backups kept (point-in-time recovery window)."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Refuse to delete the primary."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

variable "name" {
  description = "Name of the cluster, service and task family."
  type        = string
}

variable "image" {
  description = "The API image, e.g. ghcr.io/OWNER/task-api:VERSION; its entrypoint is the CLI."
  type        = string
}

variable "command" {
  description = "The CLI command of the service's tasks."
  type        = list(string)
  default     = ["serve"]
}

variable "vpc_id" {
  description = "The VPC of the tasks."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in two or more zones."
  type        = list(string)
}

variable "alb_security_group_id" {
  description = "The load balancer's security group, admitted to the API port."
  type        = string
}

variable "target_group_arn" {
  description = "The load balancer's target group of the API."
  type        = string
}

variable "alb_resource_label" {
  description = "app/<lb>/<id>/targetgroup/<tg>/<id>, for request-count autoscaling."
  type        = string
}

variable "metrics_cidr_block" {
  description = "Where Prometheus scrapes from (the metrics port, METRICS_PORT)."
  type        = string
}

variable "environment" {
  description = "Settings (src/config.ts variables) that are not secret."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Secret settings: variable name to Secrets Manager secret ARN."
  type        = map(string)
}

variable "container_port" {
  description = "PORT."
  type        = number
  default     = 3000
}

variable "metrics_port" {
  description = "METRICS_PORT."
  type        = number
  default     = 9464
}

variable "shutdown_drain_ms" {
  description = "SHUTDOWN_DRAIN_MS: /health answers 503 this long after SIGTERM."
  type        = number
  default     = 5000
}

variable "stop_timeout_seconds" {
  description = "Seconds from SIGTERM to SIGKILL: the drain plus the longest request (HTTP_REQUEST_TIMEOUT_MS)."
  type        = number
  default     = 45
}

variable "cpu" {
  description = "Task CPU units (512: the seed's half a core per instance)."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Task memory in MiB (1024: the smallest Fargate size with 512 CPU units; the container stays near the seed's 512 MiB)."
  type        = number
  default     = 1024
}

variable "desired_count" {
  description = "Tasks at the first deployment (the seed's three API servers)."
  type        = number
  default     = 3
}

variable "min_count" {
  description = "Fewest tasks autoscaling keeps."
  type        = number
  default     = 3
}

variable "max_count" {
  description = "Most tasks autoscaling starts."
  type        = number
  default     = 10
}

variable "requests_per_target_per_minute" {
  description = "Target of ALBRequestCountPerTarget (12000 a minute: 200 a second per task)."
  type        = number
  default     = 12000
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

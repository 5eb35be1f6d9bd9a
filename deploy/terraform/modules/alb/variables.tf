variable "name" {
  description = "Name of the load balancer (and prefix of its target group)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC of the targets."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The VPC's range: the load balancer reaches its targets there."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets in two or more zones."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "target_port" {
  description = "The API's port (PORT)."
  type        = number
  default     = 3000
}

variable "health_check_path" {
  description = "Readiness path of the API."
  type        = string
  default     = "/health"
}

variable "health_check_interval_seconds" {
  description = "Seconds between health checks (the seed's 30)."
  type        = number
  default     = 30
}

variable "deregistration_delay_seconds" {
  description = "How long a deregistered task keeps its requests in flight: above the longest request (HTTP_REQUEST_TIMEOUT_MS, 30 s)."
  type        = number
  default     = 35
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

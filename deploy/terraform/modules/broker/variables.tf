variable "name" {
  description = "Broker name."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "The data subnets (one per zone of the cluster)."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups admitted to port 5671 (the API tasks)."
  type        = list(string)
}

variable "engine_version" {
  description = "RabbitMQ version offered by Amazon MQ."
  type        = string
  default     = "3.13"
}

variable "instance_type" {
  description = "Broker instance type (a cluster needs mq.m5.large or larger)."
  type        = string
  default     = "mq.m5.large"
}

variable "username" {
  description = "The API's broker user."
  type        = string
  default     = "task-api"
}

variable "password" {
  description = "Its password (12+ characters), from TF_VAR_mq_password; the same goes into the AMQP_URL secret."
  type        = string
  sensitive   = true
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

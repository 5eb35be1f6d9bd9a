variable "name" {
  description = "Name prefix of every resource."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's address range; each subnet is a /24 of it (needs at least a /16)."
  type        = string
  default     = "10.20.0.0/16"
}

variable "availability_zones" {
  description = "Two or more availability zones; one public, one private and one data subnet in each."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Name at least two availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper, but a zone's outage cuts the others' egress)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

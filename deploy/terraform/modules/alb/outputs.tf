output "dns_name" {
  value = aws_lb.this.dns_name
}

output "zone_id" {
  value = aws_lb.this.zone_id
}

output "security_group_id" {
  value = aws_security_group.alb.id
}

output "target_group_arn" {
  value = aws_lb_target_group.api.arn
}

# For the service's request-count autoscaling (ALBRequestCountPerTarget).
output "resource_label" {
  value = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.api.arn_suffix}"
}

output "https_listener_arn" {
  value = aws_lb_listener.https.arn
}

output "broker_id" {
  value = aws_mq_broker.this.id
}

output "amqps_endpoint" {
  value = aws_mq_broker.this.instances[0].endpoints[0]
}

output "security_group_id" {
  value = aws_security_group.mq.id
}

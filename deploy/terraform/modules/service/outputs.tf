output "cluster_name" {
  value = aws_ecs_cluster.this.name
}

output "service_name" {
  value = aws_ecs_service.api.name
}

output "task_definition_arn" {
  value = aws_ecs_task_definition.api.arn
}

output "security_group_id" {
  value = aws_security_group.tasks.id
}

output "log_group_name" {
  value = aws_cloudwatch_log_group.api.name
}

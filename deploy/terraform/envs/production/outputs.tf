output "api_dns_name" {
  description = "Point the API's host name (an alias record) here."
  value       = module.alb.dns_name
}

output "api_zone_id" {
  value = module.alb.zone_id
}

output "ecs_cluster_name" {
  value = module.service.cluster_name
}

output "ecs_service_name" {
  value = module.service.service_name
}

output "task_definition_arn" {
  description = "Run migrations with it: aws ecs run-task ... --overrides '{\"containerOverrides\":[{\"name\":\"api\",\"command\":[\"migrate\"]}]}'"
  value       = module.service.task_definition_arn
}

output "database_primary_address" {
  value = module.database.primary_address
}

output "database_replica_addresses" {
  value = module.database.replica_addresses
}

output "database_master_user_secret_arn" {
  value = module.database.master_user_secret_arn
}

output "redis_primary_endpoint" {
  value = module.cache.primary_endpoint_address
}

output "amqps_endpoint" {
  value = module.broker.amqps_endpoint
}

output "app_secret_arns" {
  description = "Fill each: aws secretsmanager put-secret-value --secret-id ARN --secret-string ..."
  value       = { for k, s in aws_secretsmanager_secret.app : k => s.arn }
}

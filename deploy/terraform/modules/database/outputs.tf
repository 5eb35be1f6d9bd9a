output "primary_address" {
  value = aws_db_instance.primary.address
}

output "replica_addresses" {
  value = aws_db_instance.replica[*].address
}

output "port" {
  value = aws_db_instance.primary.port
}

output "master_user_secret_arn" {
  value = aws_db_instance.primary.master_user_secret[0].secret_arn
}

output "security_group_id" {
  value = aws_security_group.db.id
}

# PostgreSQL on RDS: a Multi-AZ primary (a synchronous standby in another zone, failed over to
# by RDS) and a read replica (DATABASE_READ_URLS: users' task reads, with read-your-writes). The
# master password is generated and kept by RDS in Secrets Manager, never in this state. The seed's
# db.t3.large.

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "PostgreSQL from the API tasks only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "postgres" {
  for_each                     = toset(var.allowed_security_group_ids)
  security_group_id            = aws_security_group.db.id
  referenced_security_group_id = each.value
  from_port                    = 5432
  to_port                      = 5432
  ip_protocol                  = "tcp"
}

resource "aws_db_parameter_group" "this" {
  name   = var.name
  family = "postgres${var.engine_major_version}"

  # Connections must use TLS (DATABASE_URL with sslmode=require).
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  tags = var.tags
}

resource "aws_db_instance" "primary" {
  identifier                          = var.name
  engine                              = "postgres"
  engine_version                      = var.engine_major_version
  instance_class                      = var.instance_class
  allocated_storage                   = var.allocated_storage_gb
  max_allocated_storage               = var.max_allocated_storage_gb
  storage_type                        = "gp3"
  storage_encrypted                   = true
  db_name                             = var.database_name
  username                            = var.master_username
  manage_master_user_password         = true
  multi_az                            = true
  db_subnet_group_name                = aws_db_subnet_group.this.name
  vpc_security_group_ids              = [aws_security_group.db.id]
  parameter_group_name                = aws_db_parameter_group.this.name
  backup_retention_period             = var.backup_retention_days
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-final"
  performance_insights_enabled        = true
  auto_minor_version_upgrade          = true
  copy_tags_to_snapshot               = true
  publicly_accessible                 = false
  apply_immediately                   = false
  iam_database_authentication_enabled = false
  tags                                = var.tags
}

resource "aws_db_instance" "replica" {
  count                        = var.replica_count
  identifier                   = "${var.name}-replica-${count.index + 1}"
  replicate_source_db          = aws_db_instance.primary.identifier
  instance_class               = var.instance_class
  storage_type                 = "gp3"
  storage_encrypted            = true
  multi_az                     = false
  vpc_security_group_ids       = [aws_security_group.db.id]
  parameter_group_name         = aws_db_parameter_group.this.name
  publicly_accessible          = false
  skip_final_snapshot          = true
  auto_minor_version_upgrade   = true
  performance_insights_enabled = true
  tags                         = var.tags
}

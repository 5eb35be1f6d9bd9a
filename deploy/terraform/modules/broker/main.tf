# RabbitMQ on Amazon MQ: a three-node cluster across zones (CLUSTER_MULTI_AZ; quorum queues
# survive a node's loss), private, AMQP over TLS on 5671 (AMQP_URL amqps://).

resource "aws_security_group" "mq" {
  name        = "${var.name}-mq"
  description = "AMQPS from the API tasks only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "amqps" {
  for_each                     = toset(var.allowed_security_group_ids)
  security_group_id            = aws_security_group.mq.id
  referenced_security_group_id = each.value
  from_port                    = 5671
  to_port                      = 5671
  ip_protocol                  = "tcp"
}

resource "aws_mq_broker" "this" {
  broker_name                = var.name
  engine_type                = "RabbitMQ"
  engine_version             = var.engine_version
  host_instance_type         = var.instance_type
  deployment_mode            = "CLUSTER_MULTI_AZ"
  subnet_ids                 = var.subnet_ids
  security_groups            = [aws_security_group.mq.id]
  publicly_accessible        = false
  auto_minor_version_upgrade = true
  apply_immediately          = false

  user {
    username = var.username
    password = var.password
  }

  logs {
    general = true
  }

  maintenance_window_start_time {
    day_of_week = "SUNDAY"
    time_of_day = "03:00"
    time_zone   = "UTC"
  }

  tags = var.tags
}

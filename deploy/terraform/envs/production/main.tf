# task-api in production on AWS: the monolith (`task-api serve`, every module) on ECS Fargate
# behind an application load balancer, PostgreSQL on RDS (Multi-AZ primary and a read replica),
# Redis on ElastiCache (automatic failover) and RabbitMQ on Amazon MQ (a Multi-AZ cluster), in a
# VPC over the zones of var.availability_zones. Sizes from the design doc's cost table where it
# names them (db.t3.large, cache.t3.small, three API servers).

locals {
  name = "task-api"
}

module "network" {
  source             = "../../modules/network"
  name               = local.name
  cidr_block         = var.vpc_cidr_block
  availability_zones = var.availability_zones
}

module "alb" {
  source            = "../../modules/alb"
  name              = local.name
  vpc_id            = module.network.vpc_id
  vpc_cidr_block    = module.network.vpc_cidr_block
  public_subnet_ids = module.network.public_subnet_ids
  certificate_arn   = var.certificate_arn
}

# The settings that are secret live in Secrets Manager; Terraform creates the secrets, never their
# values (`aws secretsmanager put-secret-value`, README): the database URLs with the application
# user's password, the Redis and broker URLs with the token and password given here, the signing key.
resource "aws_secretsmanager_secret" "app" {
  for_each                = toset(["DATABASE_URL", "DATABASE_READ_URLS", "REDIS_URL", "AMQP_URL", "JWT_PRIVATE_KEY"])
  name                    = "${local.name}/production/${each.key}"
  recovery_window_in_days = 7
}

module "service" {
  source                = "../../modules/service"
  name                  = local.name
  image                 = var.image
  vpc_id                = module.network.vpc_id
  private_subnet_ids    = module.network.private_subnet_ids
  alb_security_group_id = module.alb.security_group_id
  target_group_arn      = module.alb.target_group_arn
  alb_resource_label    = module.alb.resource_label
  metrics_cidr_block    = module.network.vpc_cidr_block
  secrets               = { for k, s in aws_secretsmanager_secret.app : k => s.arn }
  environment = {
    LOG_LEVEL         = "info"
    DATABASE_POOL_MAX = "10"
    # The load balancer's addresses are in the VPC: X-Forwarded-For is taken from it only.
    TRUST_PROXY             = module.network.vpc_cidr_block
    OTEL_SERVICE_NAME       = "task-api"
    MAIL_FROM               = var.mail_from
    CORS_ORIGINS            = var.cors_origins
    HTTP_REQUEST_TIMEOUT_MS = "30000"
  }
}

module "database" {
  source                     = "../../modules/database"
  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.data_subnet_ids
  allowed_security_group_ids = [module.service.security_group_id]
  instance_class             = var.db_instance_class
}

module "cache" {
  source                     = "../../modules/cache"
  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.data_subnet_ids
  allowed_security_group_ids = [module.service.security_group_id]
  node_type                  = var.cache_node_type
  auth_token                 = var.redis_auth_token
}

module "broker" {
  source                     = "../../modules/broker"
  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.data_subnet_ids
  allowed_security_group_ids = [module.service.security_group_id]
  password                   = var.mq_password
}

# One security group for all Ray nodes (they talk to each other on many ports), and one for Redis that
# admits only the Ray nodes on 6379.

resource "aws_security_group" "ray_nodes" {
  name        = "${var.name}-ray-nodes"
  description = "vidpipe Ray head and workers"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "ray_intra_cluster" {
  security_group_id            = aws_security_group.ray_nodes.id
  referenced_security_group_id = aws_security_group.ray_nodes.id
  ip_protocol                  = "-1"
  description                  = "Ray GCS, object manager, workers: node to node"
}

resource "aws_vpc_security_group_egress_rule" "ray_all" {
  security_group_id = aws_security_group.ray_nodes.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "S3, ECR, Secrets Manager (use VPC endpoints to keep this traffic private)"
}

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "vidpipe queue (ElastiCache Redis, TLS + AUTH)"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_ray" {
  security_group_id            = aws_security_group.redis.id
  referenced_security_group_id = aws_security_group.ray_nodes.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  description                  = "Redis TLS from Ray nodes only"
}

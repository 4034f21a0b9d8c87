# The work queue: ElastiCache for Redis with TLS in transit, an AUTH token, encryption at rest and a
# replica in a second AZ with automatic failover.
#
# Durability note: ElastiCache Redis 7 has no append-only file. A failover to the replica can lose the
# last second or so of writes; vidpipe tolerates that (a lost ack means a video is re-processed and its
# commit is idempotent; a lost enqueue is re-queued by the next submission or nightly run). If you need
# an AOF-like guarantee, use Amazon MemoryDB (durable multi-AZ log) with the same rediss:// URL.

resource "random_password" "redis_auth" {
  length  = 48
  special = false # ElastiCache AUTH tokens allow only printable ASCII without @, ", /
}

resource "aws_elasticache_subnet_group" "redis" {
  name       = "${var.name}-redis"
  subnet_ids = var.private_subnet_ids
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id       = "${var.name}-queue"
  description                = "vidpipe work queue"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.redis_node_type
  port                       = 6379
  num_cache_clusters         = 2
  automatic_failover_enabled = true
  multi_az_enabled           = true
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  at_rest_encryption_enabled = true
  auth_token                 = random_password.redis_auth.result
  auth_token_update_strategy = "ROTATE"
  subnet_group_name          = aws_elasticache_subnet_group.redis.name
  security_group_ids         = [aws_security_group.redis.id]
  snapshot_retention_limit   = 7
  apply_immediately          = false
}

# The full URL (with the token) lives only here; nodes read it at start (cluster/aws.yaml) and export
# REDIS_URL. It never appears in a config file, a job submission or a log (vidpipe redacts it).
resource "aws_secretsmanager_secret" "redis_url" {
  name                    = "${var.name}/redis-url"
  description             = "rediss:// URL of the vidpipe queue, AUTH token included"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id     = aws_secretsmanager_secret.redis_url.id
  secret_string = "rediss://:${random_password.redis_auth.result}@${aws_elasticache_replication_group.redis.primary_endpoint_address}:6379/0"
}

output "ecr_repository_urls" {
  description = "Push infra/docker images here; put the URLs in cluster/aws.yaml and cluster/kuberay/*.yaml."
  value       = { for k, r in aws_ecr_repository.image : k => r.repository_url }
}

output "head_instance_profile" {
  value = aws_iam_instance_profile.head.name
}

output "worker_instance_profile" {
  value = aws_iam_instance_profile.worker.name
}

output "worker_role_arn" {
  description = "For IRSA: annotate the `vidpipe` service account with eks.amazonaws.com/role-arn = this."
  value       = aws_iam_role.worker.arn
}

output "ray_security_group_id" {
  value = aws_security_group.ray_nodes.id
}

output "redis_url_secret_name" {
  description = "Secrets Manager secret holding REDIS_URL (read it with the CLI; never commit it)."
  value       = aws_secretsmanager_secret.redis_url.name
}

output "output_uri" {
  description = "What to pass as vidpipe's OUTPUT."
  value       = "s3://${var.output_bucket}/${var.output_prefix}"
}

# Container images (built from infra/docker): vidpipe-gpu for GPU workers, vidpipe-cpu for the head,
# CPU workers and the CronJob submitter. Tags are immutable so a cluster config pins exactly one build.

locals {
  images = toset(["${var.name}-gpu", "${var.name}-cpu"])
}

resource "aws_ecr_repository" "image" {
  for_each             = local.images
  name                 = each.value
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "AES256"
  }
}

resource "aws_ecr_lifecycle_policy" "image" {
  for_each   = aws_ecr_repository.image
  repository = each.value.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "keep the newest ${var.image_tag_retention} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.image_tag_retention
      }
      action = { type = "expire" }
    }]
  })
}

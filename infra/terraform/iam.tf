# Least privilege for the Ray nodes.
#   workers: read the input prefix, read+write ONLY under the output prefix (no delete: a retry overwrites
#            a partial file with a new PUT), pull the vidpipe images, read the Redis URL secret.
#   head:    the worker permissions plus what the Ray autoscaler needs to launch and terminate the
#            cluster's own EC2 workers, and to pass only the worker role to them.

locals {
  p                 = data.aws_partition.current.partition
  input_bucket_arn  = "arn:${local.p}:s3:::${var.input_bucket}"
  output_bucket_arn = "arn:${local.p}:s3:::${var.output_bucket}"
  oidc_issuer       = var.eks_oidc_provider_arn == "" ? "" : element(split("oidc-provider/", var.eks_oidc_provider_arn), 1)
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ListInputPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.input_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.input_prefix}*"]
    }
  }
  statement {
    sid       = "ReadInputObjects"
    actions   = ["s3:GetObject"]
    resources = ["${local.input_bucket_arn}/${var.input_prefix}*"]
  }
  statement {
    sid       = "ListOutputPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.output_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.output_prefix}*"]
    }
  }
  statement {
    sid = "ReadWriteOutputPrefixOnly"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${local.output_bucket_arn}/${var.output_prefix}*"]
  }
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # this action has no resource-level scoping
  }
  statement {
    sid = "PullVidpipeImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [for r in aws_ecr_repository.image : r.arn]
  }
  statement {
    sid       = "ReadRedisUrl"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.redis_url.arn]
  }
}

resource "aws_iam_policy" "worker" {
  name   = "${var.name}-worker"
  policy = data.aws_iam_policy_document.worker.json
}

data "aws_iam_policy_document" "worker_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
  dynamic "statement" {
    for_each = var.eks_oidc_provider_arn == "" ? [] : [1]
    content {
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [var.eks_oidc_provider_arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_issuer}:sub"
        values   = ["system:serviceaccount:vidpipe:vidpipe"]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_issuer}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "worker" {
  name               = "${var.name}-ray-worker"
  assume_role_policy = data.aws_iam_policy_document.worker_assume.json
}

resource "aws_iam_role_policy_attachment" "worker" {
  role       = aws_iam_role.worker.name
  policy_arn = aws_iam_policy.worker.arn
}

resource "aws_iam_instance_profile" "worker" {
  name = "${var.name}-ray-worker"
  role = aws_iam_role.worker.name
}

# --- head: worker permissions + the Ray autoscaler's EC2 calls ---

data "aws_iam_policy_document" "autoscaler" {
  statement {
    sid = "Describe"
    actions = [
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeImages",
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeKeyPairs",
      "ec2:DescribeAvailabilityZones",
    ]
    resources = ["*"] # Describe* calls have no resource-level scoping
  }
  statement {
    sid       = "LaunchWorkers"
    actions   = ["ec2:RunInstances", "ec2:CreateTags"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.region]
    }
  }
  statement {
    sid       = "ManageOnlyThisClustersNodes"
    actions   = ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances", "ec2:DeleteTags"]
    resources = ["arn:${local.p}:ec2:${var.region}:${data.aws_caller_identity.current.account_id}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/ray-cluster-name"
      values   = [var.name]
    }
  }
  statement {
    sid       = "PassOnlyTheWorkerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.worker.arn]
  }
  statement {
    sid       = "ReadInstanceProfiles"
    actions   = ["iam:GetInstanceProfile"]
    resources = [aws_iam_instance_profile.worker.arn]
  }
}

resource "aws_iam_policy" "autoscaler" {
  name   = "${var.name}-ray-autoscaler"
  policy = data.aws_iam_policy_document.autoscaler.json
}

resource "aws_iam_role" "head" {
  name               = "${var.name}-ray-head"
  assume_role_policy = data.aws_iam_policy_document.worker_assume.json
}

resource "aws_iam_role_policy_attachment" "head_worker" {
  role       = aws_iam_role.head.name
  policy_arn = aws_iam_policy.worker.arn
}

resource "aws_iam_role_policy_attachment" "head_autoscaler" {
  role       = aws_iam_role.head.name
  policy_arn = aws_iam_policy.autoscaler.arn
}

resource "aws_iam_instance_profile" "head" {
  name = "${var.name}-ray-head"
  role = aws_iam_role.head.name
}

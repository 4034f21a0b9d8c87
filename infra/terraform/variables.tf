variable "region" {
  description = "AWS region for everything (must match cluster/aws.yaml provider.region)."
  type        = string
  default     = "us-west-2"
}

variable "name" {
  description = "Name prefix for every resource; the instance profiles are <name>-ray-head / <name>-ray-worker."
  type        = string
  default     = "vidpipe"
}

variable "input_bucket" {
  description = "Bucket holding the videos. Workers may only read it."
  type        = string
}

variable "input_prefix" {
  description = "Prefix under input_bucket that vidpipe may read (no leading slash, ends with /; empty = whole bucket)."
  type        = string
  default     = ""
}

variable "create_input_bucket" {
  description = "Create input_bucket here (false when the videos already live in an existing bucket)."
  type        = bool
  default     = false
}

variable "output_bucket" {
  description = "Bucket vidpipe writes results to (created here)."
  type        = string
}

variable "output_prefix" {
  description = "The only prefix under output_bucket that workers may write (ends with /)."
  type        = string
  default     = "vidpipe/"
  validation {
    condition     = length(var.output_prefix) > 0 && endswith(var.output_prefix, "/") && !startswith(var.output_prefix, "/")
    error_message = "output_prefix must be non-empty, end with '/' and not start with '/' (e.g. \"vidpipe/\")."
  }
}

variable "vpc_id" {
  description = "VPC for the Ray nodes and Redis."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two AZs) for Redis and the Ray nodes."
  type        = list(string)
}

variable "redis_node_type" {
  description = "ElastiCache node type. The queue holds small records; a small node serves millions of videos."
  type        = string
  default     = "cache.t4g.medium"
}

variable "eks_oidc_provider_arn" {
  description = "For KubeRay on EKS: the cluster's OIDC provider ARN, to let service account vidpipe/vidpipe assume the worker role (IRSA). Empty = EC2 only."
  type        = string
  default     = ""
}

variable "image_tag_retention" {
  description = "How many images to keep per ECR repository."
  type        = number
  default     = 20
}

"""Real servers on loopback for the tests: Redis (valkey-server) and S3 (SeaweedFS `weed mini`).

Owned by the job plane; fixtures: `redis_url`, `s3_endpoint` (see below).
"""

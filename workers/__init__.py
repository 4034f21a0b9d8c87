"""vidpipe's data plane: decode, detect and track stages, and the Ray pipeline that runs them.

Nothing in here knows about Redis or buckets; the job plane (`jobs/`) hands the pipeline
`VideoSource`s and receives `VideoOutcome`s.
"""

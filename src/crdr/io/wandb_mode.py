"""Which W&B mode a run gets: online when credentials exist and the service answers, offline otherwise.

Compute nodes often hold an API key but have no route out; wandb.init then waits about two minutes and
raises. Training and ``crdr evaluate`` both ask :func:`wandb_mode` first: it sends one HTTP request to
the configured W&B host (through the proxy wandb would use) and, when nothing answers within a few
seconds, logs offline with one line saying how to upload later. Online logging demanded explicitly
(``offline=false`` in the config, or ``WANDB_MODE=online``) turns that into :class:`WandbUnreachableError`.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import os
import socket
import ssl
import threading
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.error import HTTPError
from urllib.parse import urlsplit

from crdr.io.errors import ConfigError, WandbUnreachableError

if TYPE_CHECKING:
    from wandb import Settings

log = logging.getLogger("crdr.wandb_mode")  # the name its log lines carried before it moved into crdr.io

#: Seconds the reachability probe waits for the W&B host (or its proxy) to answer.
PROBE_TIMEOUT = 5.0

#: HTTP statuses of a proxy or load balancer that cannot reach the service behind it.
GATEWAY_ERRORS = (502, 503, 504)


def wandb_mode(offline: bool | None, root_dir: Path, timeout: float, node: str) -> str:
    """The ``mode`` for wandb.init: "online", "offline" or "disabled".

    Args:
        offline: True logs offline; False demands online (as does ``WANDB_MODE=online``); None is online
            only when credentials exist and the service answers, or wandb's own setting (``WANDB_MODE``,
            ``wandb offline``) when that says offline or disabled.
        root_dir: The ``dir`` given to wandb.init (runs go to its ``wandb/`` folder), named in the message.
        timeout: Seconds the probe waits for an answer.
        node: Where ``offline`` and ``timeout`` sit in the config (``logger.wandb``), named in messages.

    Raises:
        WandbUnreachableError: Online was demanded and the service did not answer.
        ConfigError: ``timeout`` is not a positive number of seconds.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ConfigError(f"{node}.probe_timeout must be a positive number of seconds, got {timeout!r}")
    if offline:
        return "offline"
    settings = _wandb_settings()
    demanded = offline is False or os.environ.get("WANDB_MODE") == "online"
    if not demanded:
        if settings.mode in ("offline", "dryrun", "disabled"):
            return "disabled" if settings.mode == "disabled" else "offline"
        if not _has_credentials(settings):
            log.info("W&B: no API key configured, logging offline (upload later with `wandb sync`)")
            return "offline"
    proxy = _proxy_for(settings.base_url, settings)
    problem = probe(settings.base_url, timeout, proxy)
    if problem is None:
        return "online"
    host = urlsplit(settings.base_url).netloc + (f" (through proxy {_redacted(proxy)})" if proxy else "")
    if demanded:
        why = f"{node}.offline=false" if offline is False else "WANDB_MODE=online"
        raise WandbUnreachableError(
            f"W&B online logging was demanded ({why}) but {host} is unreachable ({problem}); "
            f"drop {why} to log offline and upload later"
        )
    log.warning(
        "W&B: logging offline because %s is unreachable (%s); upload later with `wandb sync %s`",
        host,
        problem,
        root_dir / "wandb",
    )
    return "offline"


def _wandb_settings() -> Settings:
    """wandb's global settings (environment and settings files) as wandb.init will use them.

    ``singleton()`` loads them without starting the wandb service; once loaded in a process, wandb keeps
    them (later changes to ``WANDB_*`` variables are ignored by wandb.init too)."""
    from wandb.sdk import wandb_setup

    return wandb_setup.singleton().settings


def _has_credentials(settings: Settings) -> bool:
    """True when W&B can go online without prompting: WANDB_API_KEY, an identity token file, an api_key
    setting, or a `wandb login` netrc entry for the configured host."""
    from wandb.errors import AuthenticationError
    from wandb.sdk.lib import wbauth

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE") or settings.api_key:
        return True
    try:
        return wbauth.read_netrc_auth(host=settings.base_url) is not None
    except AuthenticationError:  # an entry that wandb will reject with its own message
        return True


def _proxy_for(url: str, settings: Settings) -> str | None:
    """The proxy wandb-core sends ``url`` through: wandb's http(s)_proxy setting, else the standard
    HTTP(S)_PROXY / NO_PROXY variables as Go's ProxyFromEnvironment reads them (never for loopback)."""
    parts = urlsplit(url)
    configured = settings.https_proxy if parts.scheme == "https" else settings.http_proxy
    if configured:
        return configured
    host = parts.hostname or ""
    if _is_loopback(host) or urllib.request.proxy_bypass_environment(host):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redacted(proxy: str) -> str:
    """``proxy`` without its user:password part."""
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer: report it instead of following it to another host."""

    def redirect_request(self, *args, **kwargs):
        return None


def probe(url: str, timeout: float, proxy: str | None = None) -> str | None:
    """None when an HTTP server answers at ``url`` within ``timeout`` seconds, else why not (also for a
    gateway's 502/503/504: a proxy or load balancer answering for a service it cannot reach).

    One HEAD request, through ``proxy`` when given. Nothing secret is sent, so the TLS certificate is not
    checked (wandb checks it for the real requests). The wait is bounded as a whole, name lookup included
    (a lookup that hangs is left to finish in a daemon thread)."""
    handlers = [
        urllib.request.ProxyHandler({urlsplit(url).scheme: proxy} if proxy else {}),
        urllib.request.HTTPSHandler(context=_unverified_context()),
        _NoRedirect(),
    ]
    opener = urllib.request.build_opener(*handlers)
    outcome: list[str | None] = []

    def request() -> None:
        try:
            opener.open(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            outcome.append(None)
        except HTTPError as err:  # 401, 404, ...: the service answered; 502-504: a gateway answered for it
            outcome.append(f"HTTP {err.code} {err.reason}" if err.code in GATEWAY_ERRORS else None)
        except (OSError, ValueError, http.client.HTTPException) as err:
            outcome.append(_reason(err, timeout))

    thread = threading.Thread(target=request, name="wandb-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _reason(err: Exception, timeout: float) -> str:
    """A short account of a failed request."""
    reason = getattr(err, "reason", err)
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host name not resolved"
    return str(reason) or type(reason).__name__

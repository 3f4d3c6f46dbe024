"""An OpenAI-compatible chat endpoint as a ``chat(messages) -> str`` callable.

Settings come from the environment only (the key is never stored, logged or printed):
``GLOCAL_LLM_BASE_URL`` (else ``OPENAI_BASE_URL``), ``GLOCAL_LLM_API_KEY`` (else
``OPENAI_API_KEY``), ``GLOCAL_LLM_MODEL`` (or the model given on the command line).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable

from glocal.text.describe import Fatal, Transient


@dataclass(frozen=True)
class LLMSettings:
    model: str
    base_url: str | None = None  # None: the openai client's default (api.openai.com)
    api_key: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, model: str | None = None) -> "LLMSettings":
        model = model or os.environ.get("GLOCAL_LLM_MODEL")
        if not model:
            raise ValueError("no LLM model: pass --llm-model or set GLOCAL_LLM_MODEL")
        key = os.environ.get("GLOCAL_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError("no API key: set GLOCAL_LLM_API_KEY (or OPENAI_API_KEY) in the environment; "
                             "local servers that ignore keys accept any value, e.g. 'none'")
        base_url = os.environ.get("GLOCAL_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        return cls(model=model, base_url=base_url, api_key=key)


def redact(text: str, secret: str = "") -> str:
    """An error text made safe for logs, the catalog and Prefect: the key itself, anything after
    'Bearer' or in an Authorization/api-key header echoed back by a server, and the user:password
    part of URLs, each replaced by '***'."""
    if secret:
        text = text.replace(secret, "***")
    text = re.sub(r"(?i)(bearer\s+)[^\s'\",}]+", r"\1***", text)
    text = re.sub(r"(?i)((?:authorization|api[-_]?key|x-api-key)['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+", r"\1***", text)
    return re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@", r"\1***@", text)


def openai_chat(settings: LLMSettings, temperature: float, max_tokens: int, timeout_s: float) -> Callable[[list[dict]], str]:
    import openai

    # Retries are ours (glocal.text.describe), so the client's own are off: one policy, counted attempts.
    client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key, max_retries=0, timeout=timeout_s)

    def chat(messages: list[dict]) -> str:
        try:
            response = client.chat.completions.create(model=settings.model, messages=messages,
                                                      temperature=temperature, max_tokens=max_tokens)
        except openai.APITimeoutError:
            raise Transient(f"timeout after {timeout_s:g}s") from None
        except openai.APIConnectionError as exc:
            raise Transient(redact(f"connection error: {exc}", settings.api_key)) from None
        except openai.RateLimitError:
            raise Transient("rate limited (HTTP 429)") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise Fatal(f"the server rejected the API key (HTTP {exc.status_code}); check GLOCAL_LLM_API_KEY") from None
        except openai.NotFoundError:
            raise Fatal(redact(f"model {settings.model!r} or endpoint not found at {settings.base_url or 'the default base URL'}",
                               settings.api_key)) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise Transient(f"server error (HTTP {exc.status_code})") from None
            raise Fatal(f"request refused (HTTP {exc.status_code}): {redact(str(exc), settings.api_key)[:200]}") from None
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise Transient(f"malformed answer: {redact(str(exc), settings.api_key)[:120]}") from None
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise Transient("malformed answer: no choices[0].message") from None
        if not isinstance(content, str):
            raise Transient("malformed answer: message content is not text")
        return content

    return chat

"""URLs in settings: a password in one is masked when shown, and refused when written in a file
(secrets come only from the environment)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

MASK = "**********"


def mask_url(text: str) -> str:
    """`text` with the password of a URL in it masked (`redis://user:**********@host`)."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", f":{MASK}@", 1)).geturl()


def url_password(url: str, variables: str) -> Iterator[str]:
    """The problem of a URL holding a password, if it does; `variables` name where the secret
    comes from instead."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        yield f"holds a password: secrets come only from the environment ({variables})"

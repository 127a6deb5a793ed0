"""Finding sensitive data in text before it leaves the device (the router's privacy policy).

The default detector combines the field's own libraries where one exists and small documented patterns where none
does:

- email addresses: a pattern for `local@domain.tld` (RFC 5322's full grammar is not needed to *find* one);
- phone numbers: Google's libphonenumber (`phonenumbers.PhoneNumberMatcher`), which validates numbering plans, so
  "call 555-0100" in a US context counts but a year range or an order number does not;
- card numbers: 13-19 digits (spaces or dashes allowed) that pass the Luhn check (`stdnum.luhn`);
- bank accounts: IBANs validated by their check digits (`stdnum.iban`);
- API keys and secrets: detect-secrets' pattern plugins (AWS, GitHub, Slack, Stripe, private keys, JWTs, `password =`
  style assignments, ...) plus provider-style keys (`sk-...`, `xoxb-...`) and long high-entropy tokens;
- text the caller marks private (`Router(..., private_markers=...)`; RAG chunks from files marked private).

Known misses (documented, tested where cheap): names, postal addresses and dates of birth are not detected (that
needs an NER model); phone numbers written without any grouping in a region other than `default_region` may be
missed; secrets shorter than 20 characters without a keyword ("password=") are not flagged; numbers split across
lines are not joined. Plug in a stronger detector with `Router(..., detector=my_detector)`: any callable
`text -> list[Finding]`.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
CARD_CANDIDATE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# Provider key shapes detect-secrets does not cover (OpenAI/Anthropic-style "sk-", Slack "xox?-", HF "hf_").
PROVIDER_KEY = re.compile(r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9_-]{2,16}-)?[A-Za-z0-9_-]{20,}|\bxox[abpr]-[A-Za-z0-9-]{10,}"
                          r"|\bhf_[A-Za-z0-9]{30,}")
TOKEN_CANDIDATE = re.compile(r"[A-Za-z0-9+/_=-]{24,}")
# detect-secrets plugins we skip: the entropy ones report every word as a candidate (we apply our own entropy rule
# instead), and an IPv4 address in a question is usually a log line or a config, not a secret.
_SKIPPED_PLUGINS = {"Base64 High Entropy String", "Hex High Entropy String", "Public IP (ipv4)"}
HIGH_ENTROPY_BITS = 4.0  # bits per character; random base64 keys sit near 5-6, English words near 3-4


@dataclass(frozen=True)
class Finding:
    """One piece of sensitive data: what kind, and where in the text."""

    kind: str      # "email", "phone", "card", "iban", "secret", "private"
    start: int
    end: int

    def redacted(self, text: str) -> str:
        """The finding as it may be logged: kind and a masked value, never the value itself."""
        value = text[self.start:self.end]
        return f"{self.kind}:{value[:2]}…({len(value)} chars)"


Detector = Callable[[str], list[Finding]]


def _entropy(token: str) -> float:
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def _emails(text: str) -> Iterable[Finding]:
    for m in EMAIL.finditer(text):
        yield Finding("email", m.start(), m.end())


def _phones(text: str, region: str) -> Iterable[Finding]:
    import phonenumbers

    for match in phonenumbers.PhoneNumberMatcher(text, region):
        yield Finding("phone", match.start, match.end)


def _cards(text: str) -> Iterable[Finding]:
    from stdnum import luhn

    for m in CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            yield Finding("card", m.start(), m.end())


def _ibans(text: str) -> Iterable[Finding]:
    from stdnum import iban

    for m in IBAN_CANDIDATE.finditer(text):
        if iban.is_valid(m.group()):
            yield Finding("iban", m.start(), m.end())


@functools.lru_cache(maxsize=1)
def _secret_plugins() -> tuple:
    """detect-secrets' pattern and keyword plugins, built once (building them per call cost ~50 ms)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    return tuple(cls() for name, cls in get_mapping_from_secret_type_to_class().items() if name not in _SKIPPED_PLUGINS)


def _word_around(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a match to the whitespace-delimited word holding it (some plugins report only a prefix, e.g. 'ghp')."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


def _secrets(text: str) -> Iterable[Finding]:
    offset = 0
    for line in text.splitlines(keepends=True):
        for plugin in _secret_plugins():
            for value in set(plugin.analyze_string(line)):
                start = line.find(value) if value else -1
                if start >= 0:
                    lo, hi = _word_around(line, start, start + len(value)) if len(value) < 12 else \
                        (start, start + len(value))
                    yield Finding("secret", offset + lo, offset + hi)
        offset += len(line)
    for m in PROVIDER_KEY.finditer(text):
        yield Finding("secret", m.start(), m.end())
    for m in TOKEN_CANDIDATE.finditer(text):
        token = m.group()
        has_mix = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
        if has_mix and _entropy(token) >= HIGH_ENTROPY_BITS:
            yield Finding("secret", m.start(), m.end())


def find_sensitive(text: str, default_region: str = "US", private_markers: Sequence[str] = ()) -> list[Finding]:
    """Every sensitive span the default detector finds in `text`, sorted by position, duplicates merged.

    `private_markers`: literal strings (for example "#private" or a file's path) whose presence marks the whole
    text private.
    """
    findings: list[Finding] = []
    findings += _emails(text)
    findings += _phones(text, default_region)
    findings += _cards(text)
    findings += _ibans(text)
    findings += _secrets(text)
    for marker in private_markers:
        if marker and marker in text:
            findings.append(Finding("private", 0, len(text)))
    unique = {(f.kind, f.start, f.end): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f.start, f.end, f.kind))


def default_detector(default_region: str = "US", private_markers: Sequence[str] = ()) -> Detector:
    """The documented default detector as a callable, configured for a phone region and private markers."""
    return lambda text: find_sensitive(text, default_region, private_markers)

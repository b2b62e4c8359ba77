"""PII masking for bronze: keyed-hash tokens in the lake, clear values only in the encrypted vault.

A token is ``pii:<kind>:<hmac>`` over the normalised value, so the same e-mail on Shopify and Etsy gives the
same token and silver can resolve one customer across channels without ever seeing the address.

What is PII, and where, each connector declares (``retreasure.records.pii``); this is how it is masked.
Masking is default-deny where a source says so: an entity that lists its safe columns gets every other column
tokenised, so a renamed or drifted column never lands in clear. Column names are compared in a normalised
form (case, spaces, punctuation, BOM, NUL and zero-width characters), and every string nobody declared goes
through a safety net that finds e-mail addresses and phone numbers in free text.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import re2
from cryptography.fernet import Fernet

from retreasure.lake.store import Lake, TableRef
from retreasure.records.pii import PiiSpec, column_name

VAULT = TableRef("restricted", "pii")
VAULT_SCHEMA = pa.schema(
    [
        ("token", pa.string()),
        ("kind", pa.string()),
        ("ciphertext", pa.binary()),
        ("source", pa.string()),
        ("first_seen_at", pa.timestamp("us", tz="UTC")),
    ]
)
TOKEN_PREFIX = "pii:"  # noqa: S105 - a marker, not a credential
# Every pattern here runs on text of any length from outside (a broken CSV line, a free-text field): RE2 matches
# in time linear in its input, where a backtracking engine took seconds on a 40 KB line and hours on 10 MB.
_NON_DIGITS = re2.compile(r"[^0-9+]")
_EMAIL = re2.compile(r"[\pL\pN_.+'-]+@[\pL\pN_-]+(?:\.[\pL\pN_-]+)*\.[A-Za-z]{2,}")
_IP = re2.compile(r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b")
# A run of at least 7 digits and the separators phone numbers are written with (up to three between two digits,
# as in ") (" or " - "); which part of it, if any, is a phone number is decided by phone_spans(), group by group.
_DIGIT_RUN = re2.compile(r"\+?\(?[0-9](?:[ ().\-/]{0,3}[0-9]){6,}")
# Splits a run (digits and separators only) into digit groups: one character class, nothing to backtrack into, so
# the standard engine is linear here too, and far cheaper per match than RE2's Python binding.
_DIGITS = re.compile(r"[0-9]+")
# An ISO 8601 date-time, the commonest many-digit string of event data, holds no phone number: its one run of 7+
# digits is the date, opened by a 4-digit year not starting with 0 and joined by "-", a shape phone_spans() never
# starts a window at; the time's groups are glued by ":" or follow "." and "-". Recognised in one bounded match,
# it skips the scan (a third of the masking time of a clickstream message). Linear like _DIGITS: no nesting.
_ISO_DATETIME = re.compile(r"[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?")


# -- phone numbers in free text ------------------------------------------------------------------------------
# A phone number is 7 to 15 digits (E.164's maximum) written in one of the shapes people use for them:
#   international  +44 20 7946 0958, +1.212.555.0147, +4930123456   (a leading "+")
#   dial-out       0049 30 123456                                    ("00" and a country code, then more groups)
#   area in parens (212) 555-0147                                    (2-5 digits in parentheses, then more)
#   trunk prefix   020 7946 0958, 030 1234567, 01 23 45 67 89        ("0" and an area code, same separator)
#   North American 212-555-0147, 212.555.0147                        (3-3-4 groups, same separator)
# Ordinary numbers do not take these shapes: prices and quantities have too few digits or a lone decimal point,
# dates are 4-2-2 or 2-2-4 groups not starting with an area code, a bare run of digits (an EAN, an order number)
# has no separator and no "+", and ids glued to letters ("SKU-212-555-0147") are not numbers on their own.
# The longest window that fits is taken: a number written right after a phone number with only a space between
# ("0958 12") may be read as part of it, which errs on the side of masking.
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 7, 15
NO_PHONE_KEPT, NO_PHONE_KEPT_CHARS = 100_000, 1024  # how many strings known to hold no phone, and how long
_NO_DIGITS = str.maketrans("", "", "0123456789")
TOKENS_KEPT = 200_000  # tokens of clear values remembered (an HMAC each saved): customers' e-mails, visitors' IPs

# -- the safety net over a batch of texts ---------------------------------------------------------------------
# A screen (RE2, as Arrow runs it over a whole batch) that every text in which mask_contacts() would change a
# string matches, and nearly no other: the texts it flags are masked string by string. An e-mail address needs an
# "@". A phone number needs a window of 7+ digits that phone_spans() may start (after a "+"; after "(" and a
# group of 2-5 digits closed by ")"; or, where no letter, digit or "_" is glued to it as _glued() judges -- by
# ASCII characters here, which flags more --, at a group of 3 digits or a "0" and more digits) and, but after a
# "+", a separator between two of its digit groups (_is_phone() admits no other shape). Dates and times do not
# match: their groups are of 4 or 2 digits, or glued to the one before.
_UNGLUED = r"(?:^|[^A-Za-z0-9_\-./:]|(?:^|[^A-Za-z0-9_])[\-./:])"
_SEP = r"[ ().\-/]"
_GROUPED = "|".join(
    [f"[0-9]{{3}}{_SEP}{{1,3}}[0-9](?:{_SEP}{{0,3}}[0-9]){{3}}"]
    + [f"0[0-9]{{{more}}}{_SEP}{{1,3}}[0-9](?:{_SEP}{{0,3}}[0-9]){{{5 - more}}}" for more in range(1, 5)]
    + [f"0[0-9]{{5,}}{_SEP}{{1,3}}[0-9]"]
)
CONTACT_SCREEN = rf"@|\+\(?[0-9](?:{_SEP}{{0,3}}[0-9]){{6}}|\( {{0,2}}[0-9]{{2,5}} {{0,2}}\)|{_UNGLUED}(?:{_GROUPED})"


def declared_key_screen(spec: PiiSpec) -> str:
    """A pattern (RE2) that a compact JSON text without backslash escapes matches when one of its keys is not a
    name of ``spec``'s paths as written yet may be one as ``column_name`` compares names ("IP", " ip", "E-mail"):
    such a record is masked by ``mask``, which compares that way. Flags more than it must (a non-ASCII key)."""
    names = sorted({column_name(name) for name in _names(spec.tree)} - {""})
    # In compact JSON without escapes a string followed by ":" is a key: '"' never occurs inside a string.
    return "|".join([r'"[^"]*[^\x00-\x7f][^"]*":', *(_near_miss(name) for name in names)])


def _names(tree: dict[str, Any]) -> Iterable[str]:
    for name, sub in tree.items():
        yield name
        if isinstance(sub, dict):
            yield from _names(sub)


def _near_miss(name: str) -> str:
    """Keys that ``column_name`` makes ``name`` and are not ``name`` itself (ASCII: other keys are flagged whole):
    a separator before or after it, a capital letter, or another separator between its words."""
    sep, loose_sep = r'[^"a-zA-Z0-9]', r'[^"a-zA-Z0-9]+'
    words = name.split("_")

    def body(capital: int = -1, odd_join: int = -1) -> str:
        parts: list[str] = []
        position = 0
        for index, word in enumerate(words):
            if index:
                parts.append(rf'(?:[^"a-zA-Z0-9_]{sep}*|_{sep}+)' if index == odd_join else loose_sep)
            for char in word:
                if position == capital:
                    parts.append(re2.escape(char.upper()))
                elif char.isascii() and char.isalpha():
                    parts.append(f"[{char.lower()}{char.upper()}]")
                else:
                    parts.append(re2.escape(char))
                position += 1
        return "".join(parts)

    letters = [at for at, char in enumerate("".join(words)) if char.isascii() and char.isalpha()]
    shapes = [rf'"{sep}+{body()}{sep}*":', rf'"{body()}{sep}+":']
    shapes += [rf'"{sep}*{body(capital=at)}{sep}*":' for at in letters]
    shapes += [rf'"{sep}*{body(odd_join=at)}{sep}*":' for at in range(1, len(words))]
    return "|".join(shapes)


def _glued(text: str, before: int, step: int) -> bool:
    """Is the character at ``before`` part of a word (a letter or digit, or a joiner followed by one)?"""
    if not 0 <= before < len(text):
        return False
    char = text[before]
    if char.isalnum() or char == "_":
        return True
    beyond = before + step
    return char in "-./:" and 0 <= beyond < len(text) and (text[beyond].isalnum() or text[beyond] == "_")


def _is_phone(first: int, last: int, groups: list[str], seps: list[str], plus: bool, paren: bool) -> bool:
    digits = sum(len(groups[k]) for k in range(first, last + 1))
    if not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
        return False
    inner = [seps[k].strip() or " " for k in range(first + 1, last + 1)]  # separators inside the window
    count, lead = last - first + 1, groups[first]
    if count > 1 and len(groups[last]) < 2:
        return False  # no format ends on a single digit: that is a number written after it ("0958 1 item")
    if plus:
        # "+12345.67" (and "+12345.67 12.50") is a signed amount: a country code has at most three digits.
        return not (count >= 2 and inner[0] == "." and len(lead) > 3)
    if paren:
        return count >= 2 and 2 <= len(lead) <= 5
    if count < 2:
        return False
    uniform = len(set(inner)) == 1 and inner[0] in {" ", "-", ".", "/"}
    if lead.startswith("00") and len(lead) >= 3 and lead[2] != "0":
        return digits >= 9 and uniform
    if lead[0] == "0" and lead[1:2] not in ("", "0") and len(lead) <= 5 and uniform:
        if len(lead) == 2 and any(len(groups[k]) != 2 for k in range(first, last + 1)):
            return False  # a two-digit area code is the French pairs style, 01 23 45 67 89
        return 9 <= digits <= 12
    shape = [len(groups[k]) for k in range(first, last + 1)]
    return shape == [3, 3, 4] and uniform and inner[0] != "/" and lead[0] not in "01"


def phone_spans(text: str) -> Iterable[tuple[int, int]]:
    """(start, end) of every phone number in ``text``; linear: each group starts at most one bounded window."""
    for run in _DIGIT_RUN.finditer(text):
        start, end = run.span()
        matches = list(_DIGITS.finditer(text, start, end))
        if sum(m.end() - m.start() for m in matches) < MIN_PHONE_DIGITS:
            continue
        groups = [m.group() for m in matches]
        seps = [""] + [text[matches[k - 1].end() : matches[k].start()] for k in range(1, len(matches))]
        glued_left = _glued(text, start - 1, -1)
        glued_right = _glued(text, end, 1)
        k = 0
        while k < len(groups):
            begin = matches[k].start()
            plus = k == 0 and text[start] == "+"
            paren = (text[start:begin] if k == 0 else seps[k]).rstrip().endswith("(")
            paren = paren and seps[k + 1].lstrip().startswith(")") if k + 1 < len(groups) else False
            # A window starts at the run's start or after a space, never inside a dash-joined token.
            starts_clean = (k == 0 and not glued_left) or (k > 0 and seps[k][-1:] in (" ", "(", "\t"))
            lead = groups[k]
            # Only these can open a phone number: most digit groups are dismissed here, in constant time.
            starts_clean = starts_clean and (plus or paren or len(lead) == 3 or (lead[0] == "0" and len(lead) > 1))
            best = -1
            if starts_clean:
                digits, last = 0, k
                while last < len(groups) and digits + len(groups[last]) <= MAX_PHONE_DIGITS:
                    digits += len(groups[last])
                    ends_clean = (last == len(groups) - 1 and not glued_right) or (
                        last < len(groups) - 1 and seps[last + 1][:1] in (" ", ")", "\t")
                    )
                    if ends_clean and _is_phone(k, last, groups, seps, plus, paren):
                        best = last
                    last += 1
            if best < 0:
                k += 1
                continue
            first_char = start if k == 0 else begin - (1 if paren else 0)
            yield first_char, matches[best].end()
            k = best + 1


def declared_only_masks(spec: PiiSpec) -> bool:
    """Does ``mask`` change a record only at its declared paths, plus the safety net? Not for a default-deny
    spec (every undeclared column is tokenised) nor one with a ``*`` (paths that merge)."""

    def plain(tree: dict[str, Any]) -> bool:
        return "*" not in tree and all(isinstance(sub, str) or plain(sub) for sub in tree.values())

    return spec.safe is None and plain(spec.tree)


def normalise(kind: str, value: str) -> str:
    """The form that is hashed: equal people give equal tokens whatever the channel's formatting."""
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return _NON_DIGITS.sub("", value)
    return " ".join(value.split()).casefold()


def _subtree(tree: dict[str, Any], key: str) -> Any:
    """What applies under ``key`` (or its normalised name): its own paths and the wildcard's, merged (a leaf
    kind wins)."""
    specific, wild = tree.get(key), tree.get("*")
    if specific is None and tree:
        specific = tree.get(column_name(key))
    if wild is None or isinstance(specific, str):
        return specific
    if specific is None or isinstance(wild, str):
        return specific if specific is not None else wild
    merged = dict(wild)
    for name, value in specific.items():
        merged[name] = _subtree({name: value, "*": wild.get(name)}, name) if name in wild else value
    return merged


class PiiMasker:
    """Replaces PII values with tokens and collects the clear values for the vault."""

    def __init__(self, hmac_key: str, vault_key: str | None = None) -> None:
        if not hmac_key:
            raise ValueError("PII HMAC key is not set (RETREASURE_PII_HMAC_KEY)")
        self._key = hmac_key.encode()
        self._fernet = Fernet(vault_key.encode()) if vault_key else None
        self.pending: dict[str, tuple[str, str]] = {}  # token -> (kind, clear value)
        self._tokens: dict[tuple[str, str], str] = {}  # (kind, clear value) -> token: the same people recur
        # Strings scanned for phone numbers and found to hold none: a user agent or an id repeats in message
        # after message. Only such strings are kept (one holding PII must reach the vault every time).
        self._no_phone: dict[str, None] = {}

    @property
    def token_key(self) -> bytes:
        """The HMAC key of the tokens, for a native pass that must make the same ones (``bronze.native``)."""
        return self._key

    def token(self, kind: str, value: str) -> str:
        known = self._tokens.get((kind, value))
        if known is not None:
            return known
        digest = hmac.new(self._key, normalise(kind, value).encode(), hashlib.sha256).hexdigest()
        if len(self._tokens) >= TOKENS_KEPT:
            self._tokens.clear()
        token = self._tokens[(kind, value)] = f"{TOKEN_PREFIX}{kind}:{digest[:32]}"
        return token

    def _mask_value(self, kind: str, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip() or value.startswith(TOKEN_PREFIX):
            return value
        token = self.token(kind, value)
        self.pending.setdefault(token, (kind, value))
        return token

    def mask(self, record: Any, spec: PiiSpec) -> Any:
        """A copy of ``record`` with declared PII tokenised, undeclared fields of a default-deny entity
        tokenised whole, and any e-mail address or phone number in the other strings caught too."""
        tree = spec.tree
        if spec.safe is None or not isinstance(record, dict):
            return self._walk(record, tree)
        out = {}
        for key, value in record.items():
            sub = _subtree(tree, key)
            if sub is None and column_name(key) not in spec.safe:
                out[key] = self._deny(value)
            else:
                out[key] = self._walk({key: value}, tree)[key]
        return out

    def mask_declared(self, record: dict[str, Any], spec: PiiSpec) -> list[tuple[str, str, str]] | None:
        """Tokenise, in place, the values at ``spec``'s declared paths of ``record``, as ``mask`` does; returns
        the (token, kind, clear value) of each for ``remember``, or None (``record`` untouched) when a path
        passes through a list: ``mask`` walks those. The paths are followed by their exact names: a record with
        a key only the normalised comparison would match needs ``mask``, and ``declared_key_screen`` finds
        those. The safety net is not applied: ``CONTACT_SCREEN`` tells the records that need it. For specs
        ``declared_only_masks`` accepts."""
        changes: list[tuple[dict[str, Any], str, str, str, str]] = []
        if not self._declared(record, spec.tree, changes):
            return None
        for node, key, token, _, _ in changes:
            node[key] = token
        return [(token, kind, value) for _, _, token, kind, value in changes]

    def _declared(
        self, node: dict[str, Any], tree: dict[str, Any], changes: list[tuple[dict[str, Any], str, str, str, str]]
    ) -> bool:
        # The tree's few names looked up, not the record's many keys walked: this runs for every record of a batch.
        for key, sub in tree.items():
            value = node.get(key)
            if value is None:
                continue
            if type(sub) is str:
                if type(value) is str and value.strip() and not value.startswith(TOKEN_PREFIX):
                    token = self._tokens.get((sub, value)) or self.token(sub, value)
                    changes.append((node, key, token, sub, value))
            elif type(value) is dict:
                if not self._declared(value, sub, changes):
                    return False
            elif type(value) is list:
                return False
        return True

    def remember(self, found: list[tuple[str, str, str]]) -> None:
        """Keep the clear values of tokens ``mask_declared`` gave, for the vault, as ``mask`` keeps them."""
        for token, kind, value in found:
            self.pending.setdefault(token, (kind, value))

    def _deny(self, value: Any) -> Any:
        """An undeclared value of a default-deny entity, tokenised whole: a string, or every string inside."""
        if isinstance(value, dict):
            return {k: self._deny(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._deny(v) for v in value]
        return self._mask_value("text", value) if isinstance(value, str) else value

    def _walk(self, node: Any, tree: Any) -> Any:
        if isinstance(node, list):
            return [self._walk(item, tree) for item in node]
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                sub = _subtree(tree, key)
                if isinstance(sub, str):
                    out[key] = self._mask_value(sub, value) if not isinstance(value, dict | list) else value
                else:
                    out[key] = self._walk(value, sub or {})
            return out
        # The safety net: an e-mail address or a phone number in a string nobody declared is still PII.
        if isinstance(node, str):
            return self.mask_contacts(node)
        return node

    def mask_contacts(self, text: str) -> str:
        """``text`` with every e-mail address and phone number in it tokenised; the rest unchanged."""
        if "@" in text:
            text = self._replace(text, "email", (m.span() for m in _EMAIL.finditer(text)))
        # Most strings have too few digits to hold a phone number: counted in C, they skip the scan.
        if len(text) < MIN_PHONE_DIGITS or len(text) - len(text.translate(_NO_DIGITS)) < MIN_PHONE_DIGITS:
            return text
        if text in self._no_phone or _ISO_DATETIME.fullmatch(text):
            return text
        masked = self._replace(text, "phone", phone_spans(text))
        if masked is text and len(text) <= NO_PHONE_KEPT_CHARS:
            if len(self._no_phone) >= NO_PHONE_KEPT:
                self._no_phone.clear()
            self._no_phone[text] = None
        return masked

    def mask_text(self, text: str) -> str:
        """Text that did not parse may still hold PII: every shape recognisable without field names."""
        text = self.mask_contacts(text)
        return self._replace(text, "ip", (m.span() for m in _IP.finditer(text))) if "." in text else text

    def _replace(self, text: str, kind: str, spans: Iterable[tuple[int, int]]) -> str:
        # Joined once at the end: RE2's sub() with a function rebuilds the string per match (quadratic).
        pieces, position = [], 0
        for start, end in spans:
            pieces += [text[position:start], self._mask_value(kind, text[start:end])]
            position = end
        if not pieces:
            return text
        pieces.append(text[position:])
        return "".join(pieces)

    def flush_vault(self, lake: Lake, source: str) -> int:
        """Encrypt and store the clear values seen since the last flush; returns new vault rows."""
        if not self.pending:
            return 0
        return lake.insert_new(VAULT, self.vault_rows(source), ["token"])

    def vault_rows(self, source: str) -> pa.Table:
        """The clear values seen since the last call, encrypted: the vault's rows for them (``pending`` emptied)."""
        if not self.pending:
            return VAULT_SCHEMA.empty_table()
        if self._fernet is None:
            raise ValueError("PII vault key is not set (RETREASURE_PII_VAULT_KEY)")
        fernet, now = self._fernet, datetime.now(UTC)
        rows = [
            {
                "token": token,
                "kind": kind,
                "ciphertext": fernet.encrypt(value.encode()),
                "source": source,
                "first_seen_at": now,
            }
            for token, (kind, value) in self.pending.items()
        ]
        self.pending.clear()
        return pa.Table.from_pylist(rows, schema=VAULT_SCHEMA)

    def reveal(self, ciphertext: bytes) -> str:
        """Clear value of a vault row: for the fulfillment and opt-in marketing uses only."""
        if self._fernet is None:
            raise ValueError("PII vault key is not set (RETREASURE_PII_VAULT_KEY)")
        return self._fernet.decrypt(ciphertext).decode()

//! The pass over one message: a strict JSON reader (RFC 8259, as orjson reads) that writes the compact text as
//! it reads, tokenising declared values on the way. Anything it is not sure to write as orjson does makes it
//! give up (None): the Python path lands that message.

use std::borrow::Cow;
use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::tree::{Child, Node};

/// Nesting beyond which the pass gives up. The Python path refuses a text of more than 400 bytes holding more
/// than 200 brackets, so a deeper text is refused by it too, and the recursion stays shallow.
const MAX_DEPTH: usize = 256;
const TOKEN_PREFIX: &[u8] = b"pii:";
const TOKEN_HEX: usize = 32; // hex digits of the HMAC a token keeps
/// Tokens kept per pass (an HMAC each saved: a visitor's IP recurs in every event of a session), as
/// ``PiiMasker`` keeps ``TOKENS_KEPT``: the cache is emptied when full.
const TOKENS_KEPT: usize = 200_000;

/// The tokens of clear values met before: kind, a zero byte and the value as written -> token.
#[derive(Default)]
pub struct TokenCache {
    tokens: HashMap<Vec<u8>, String>,
}

pub struct Rules {
    root: Node,
    mac: Hmac<Sha256>,
    taken: usize,
    screen: Option<regex::bytes::Regex>,
    max_line_bytes: usize,
    max_text_bytes: usize,
    max_brackets: usize,
}

/// One declared value tokenised: the token, its kind and the clear value.
pub struct Change {
    order: usize,
    pub token: String,
    pub kind: String,
    pub value: String,
}

/// The value at a taken path (an object, a list or a float there: None for the whole message). Only a string's
/// value is returned: the Python side reads a number or a boolean from the landed text (rare: keys and times are
/// strings).
#[derive(Clone)]
pub enum Taken {
    Absent, // or null
    Text(String),
    Other, // an integer or a boolean
}

/// A message landed: its compact text is at the end of the arena it was given.
pub struct Landed {
    pub tokens: Vec<Change>,
    pub hash: [u8; 32],
    pub taken: Vec<Taken>,
}

impl Rules {
    pub fn new(
        root: Node,
        hmac_key: &[u8],
        taken: usize,
        screen: Option<regex::bytes::Regex>,
        max_line_bytes: usize,
        max_text_bytes: usize,
        max_brackets: usize,
    ) -> Self {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(hmac_key)
            .expect("HMAC takes a key of any length");
        Self {
            root,
            mac,
            taken,
            screen,
            max_line_bytes,
            max_text_bytes,
            max_brackets,
        }
    }

    pub fn taken_paths(&self) -> usize {
        self.taken
    }

    /// The landed form of one message, its text written at the end of `arena` (one buffer for a batch's
    /// texts), or None for the Python path (`arena` as it was).
    pub fn land(
        &self,
        value: &[u8],
        arena: &mut Vec<u8>,
        cache: &mut TokenCache,
    ) -> Option<Landed> {
        let start = arena.len();
        let mut reader = Reader {
            rules: self,
            cache,
            src: value,
            at: 0,
            out: std::mem::take(arena),
            changes: Vec::new(),
            taken: vec![Taken::Absent; self.taken],
            keys: Vec::new(),
        };
        let read = reader.message(self);
        let Reader {
            out,
            mut changes,
            taken,
            ..
        } = reader;
        *arena = out;
        let landed = read.and_then(|()| self.judge(&arena[start..]));
        let Some(hash) = landed else {
            arena.truncate(start);
            return None;
        };
        changes.sort_by_key(|change| change.order);
        Some(Landed {
            tokens: changes,
            hash,
            taken,
        })
    }

    /// A compact text's SHA-256, or None when a limit or the screen sends it the Python way.
    fn judge(&self, text: &[u8]) -> Option<[u8; 32]> {
        if text.len() > self.max_text_bytes {
            return None;
        }
        if text.len() > 2 * self.max_brackets
            && memchr::memchr2_iter(b'{', b'[', text).count() > self.max_brackets
        {
            return None;
        }
        if self
            .screen
            .as_ref()
            .is_some_and(|screen| screen.is_match(text))
        {
            return None;
        }
        Some(Sha256::digest(text).into())
    }

    /// ``pii:<kind>:<hmac>`` over the normalised value, as ``PiiMasker.token`` makes it. ASCII values only.
    fn token(&self, kind: &str, value: &[u8], cache: &mut TokenCache) -> String {
        let mut key = Vec::with_capacity(kind.len() + 1 + value.len());
        key.extend_from_slice(kind.as_bytes());
        key.push(0);
        key.extend_from_slice(value);
        if let Some(token) = cache.tokens.get(&key) {
            return token.clone();
        }
        let normal = normalise(kind, value);
        let mut mac = self.mac.clone();
        mac.update(&normal);
        let digest = hex(&mac.finalize().into_bytes());
        let token = format!("pii:{kind}:{}", &digest[..TOKEN_HEX]);
        if cache.tokens.len() >= TOKENS_KEPT {
            cache.tokens.clear();
        }
        cache.tokens.insert(key, token.clone());
        token
    }
}

struct Reader<'a> {
    rules: &'a Rules,
    cache: &'a mut TokenCache,
    src: &'a [u8],
    at: usize,
    out: Vec<u8>,
    changes: Vec<Change>,
    taken: Vec<Taken>,
    keys: Vec<Cow<'a, [u8]>>,
}

impl<'a> Reader<'a> {
    /// The whole message: one object, JSON's white space around it.
    fn message(&mut self, rules: &Rules) -> Option<()> {
        if self.src.is_empty() || self.src.len() > rules.max_line_bytes {
            return None;
        }
        std::str::from_utf8(self.src).ok()?;
        self.skip_space();
        if self.peek()? != b'{' {
            return None;
        }
        self.object(Some(&rules.root), 0)?;
        self.skip_space();
        (self.at == self.src.len()).then_some(())
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.src.get(self.at).copied()
    }

    #[inline]
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// An object at `at` ("{"), with what applies to its keys.
    fn object(&mut self, node: Option<&Node>, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.out.push(b'{');
        self.skip_space();
        if self.peek()? == b'}' {
            self.at += 1;
            self.out.push(b'}');
            return Some(());
        }
        // The keys seen in this object, on a stack shared by the nested ones (no allocation per object).
        let base = self.keys.len();
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let name = self.string()?;
            // A repeated key: orjson keeps the last value at the first one's place; the Python way takes it.
            if self.keys[base..].contains(&name) {
                return None;
            }
            self.out.push(b'"');
            self.out.extend_from_slice(&name);
            self.out.extend_from_slice(b"\":");
            let child = node.and_then(|node| node.child(&name));
            self.keys.push(name);
            self.skip_space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.skip_space();
            self.value(child, depth)?;
            if self.closed(b'}')? {
                self.keys.truncate(base);
                return Some(());
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.out.push(b'[');
        self.skip_space();
        if self.peek()? == b']' {
            self.at += 1;
            self.out.push(b']');
            return Some(());
        }
        loop {
            self.value(None, depth)?;
            if self.closed(b']')? {
                return Some(());
            }
        }
    }

    /// After an object's or array's item: a comma (false) or its `close` (true), either copied; None otherwise.
    fn closed(&mut self, close: u8) -> Option<bool> {
        self.skip_space();
        let next = self.peek()?;
        if next != b',' && next != close {
            return None;
        }
        self.at += 1;
        self.out.push(next);
        if next == close {
            return Some(true);
        }
        self.skip_space();
        Some(false)
    }

    /// A value at `at`, under a key `child` says what to do with (None: nothing).
    fn value(&mut self, child: Option<&Child>, depth: usize) -> Option<()> {
        let taken = child.and_then(|child| child.taken);
        match self.peek()? {
            b'{' => {
                if taken.is_some() {
                    return None; // an object as a key or a time: the Python way reads it
                }
                self.object(child.and_then(|child| child.node.as_ref()), depth + 1)
            }
            b'[' => {
                if taken.is_some() || child.is_some_and(|child| child.pii_branch) {
                    return None; // the masker walks lists; a list as a key or a time: the Python way
                }
                self.array(depth + 1)
            }
            b'"' => {
                let text = self.string()?;
                match child.and_then(|child| child.pii.as_ref()) {
                    Some((kind, order)) if declared(kind, &text)? => {
                        let token = self.rules.token(kind, &text, self.cache);
                        self.out.push(b'"');
                        self.out.extend_from_slice(token.as_bytes());
                        self.out.push(b'"');
                        let value = String::from_utf8(text.into_owned()).ok()?;
                        self.changes.push(Change {
                            order: *order,
                            token,
                            kind: kind.clone(),
                            value,
                        });
                    }
                    _ => {
                        self.out.push(b'"');
                        self.out.extend_from_slice(&text);
                        self.out.push(b'"');
                        if let Some(slot) = taken {
                            self.taken[slot] =
                                Taken::Text(String::from_utf8(text.into_owned()).ok()?);
                        }
                    }
                }
                Some(())
            }
            b'-' | b'0'..=b'9' => {
                self.integer()?;
                if let Some(slot) = taken {
                    self.taken[slot] = Taken::Other;
                }
                Some(())
            }
            b't' => self.literal(b"true", taken.map(|slot| (slot, Taken::Other))),
            b'f' => self.literal(b"false", taken.map(|slot| (slot, Taken::Other))),
            b'n' => self.literal(b"null", None),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], taken: Option<(usize, Taken)>) -> Option<()> {
        if !self.src[self.at..].starts_with(word) {
            return None;
        }
        self.at += word.len();
        self.out.extend_from_slice(word);
        if let Some((slot, value)) = taken {
            self.taken[slot] = value;
        }
        Some(())
    }

    /// A string at `at` ('"'), its escapes decoded. An escape that orjson writes back as one (a quote, a
    /// backslash, a control character), a lone surrogate or a control character as written: None.
    #[inline]
    fn string(&mut self) -> Option<Cow<'a, [u8]>> {
        let start = self.at + 1;
        let end = start + memchr::memchr2(b'"', b'\\', &self.src[start..])?;
        if self.src[end] == b'"' {
            let text = &self.src[start..end];
            if text.iter().any(|&byte| byte < 0x20) {
                return None;
            }
            self.at = end + 1;
            return Some(Cow::Borrowed(text));
        }
        let mut text = self.src[start..end].to_vec();
        let mut at = end;
        loop {
            match *self.src.get(at)? {
                b'"' => break,
                b'\\' => {
                    let (code, step) = match *self.src.get(at + 1)? {
                        b'/' => (u32::from(b'/'), 2),
                        b'u' => {
                            let high = hex4(self.src.get(at + 2..at + 6)?)?;
                            if (0xDC00..0xE000).contains(&high) {
                                return None;
                            }
                            if (0xD800..0xDC00).contains(&high) {
                                if self.src.get(at + 6..at + 8)? != b"\\u" {
                                    return None;
                                }
                                let low = hex4(self.src.get(at + 8..at + 12)?)?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                                (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), 12)
                            } else {
                                (high, 6)
                            }
                        }
                        _ => return None, // \" \\ \b \f \n \r \t: written back escaped
                    };
                    at += step;
                    if code < 0x20 || code == u32::from(b'"') || code == u32::from(b'\\') {
                        return None;
                    }
                    let mut buffer = [0; 4];
                    text.extend_from_slice(
                        char::from_u32(code)?.encode_utf8(&mut buffer).as_bytes(),
                    );
                }
                byte if byte < 0x20 => return None,
                byte => {
                    text.push(byte);
                    at += 1;
                }
            }
        }
        self.at = at + 1;
        Some(Cow::Owned(text))
    }

    /// An integer at `at`, written as orjson writes it ("-0" as "0"); a float, or an integer beyond 64 bits
    /// (orjson reads it as a float), gives up.
    fn integer(&mut self) -> Option<()> {
        let start = self.at;
        let negative = self.src[start] == b'-';
        let digits_start = start + usize::from(negative);
        let mut end = digits_start;
        while let Some(b'0'..=b'9') = self.src.get(end) {
            end += 1;
        }
        let digits = &self.src[digits_start..end];
        if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.src.get(end) {
            return None;
        }
        let text = std::str::from_utf8(digits).ok()?;
        if negative && digits == b"0" {
            self.out.push(b'0');
        } else {
            // Within 64 bits, signed below zero and unsigned above, or orjson reads a float.
            if negative {
                format!("-{text}").parse::<i64>().ok()?;
            } else {
                text.parse::<u64>().ok()?;
            }
            self.out.extend_from_slice(&self.src[start..end]);
        }
        self.at = end;
        Some(())
    }
}

/// Is a declared string tokenised (not blank, not a token already)? None: the Python way decides, for a value
/// whose normalised form this pass may not make as Python does: any non-ASCII value but an e-mail address or a
/// phone number in Latin letters (lower-cased alike by Python and Rust; no Unicode space among them).
#[inline]
fn declared(kind: &str, value: &[u8]) -> Option<bool> {
    if !value.is_ascii() {
        if kind != "email" && kind != "phone" {
            return None;
        }
        let text = std::str::from_utf8(value).ok()?;
        if text
            .chars()
            .any(|c| c as u32 >= 0x250 || c == '\u{85}' || c == '\u{a0}')
        {
            return None;
        }
    }
    let stripped = strip(value);
    Some(!stripped.is_empty() && !value.starts_with(TOKEN_PREFIX))
}

/// Python's ``str.isspace`` for an ASCII character.
#[inline]
fn is_space(byte: u8) -> bool {
    matches!(
        byte,
        b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' '
    )
}

fn strip(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |at| at + 1);
    &value[start..end]
}

/// ``retreasure.bronze.pii.normalise`` for an ASCII value.
fn normalise(kind: &str, value: &[u8]) -> Vec<u8> {
    let value = strip(value);
    match kind {
        "email" if value.is_ascii() => value.to_ascii_lowercase(),
        "email" => String::from_utf8_lossy(value).to_lowercase().into_bytes(), // Latin letters only: see declared
        "phone" => value
            .iter()
            .copied()
            .filter(|&b| b.is_ascii_digit() || b == b'+')
            .collect(),
        _ => {
            let mut out = Vec::with_capacity(value.len());
            for word in value
                .split(|&b| is_space(b))
                .filter(|word| !word.is_empty())
            {
                if !out.is_empty() {
                    out.push(b' ');
                }
                out.extend(word.iter().map(u8::to_ascii_lowercase));
            }
            out
        }
    }
}

fn hex4(digits: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16)
        .ok()
        .filter(|_| digits.iter().all(u8::is_ascii_hexdigit))
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    hex_into(bytes, &mut out);
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// The lower-case hex digits of `bytes`, written at the end of `out`.
pub fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 15)]);
    }
}

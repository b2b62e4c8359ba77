//! One pass over a JSON message in native code: validate and parse it, tokenise the values at the entity's
//! declared PII paths, write the compact text the Python path writes (orjson's, byte for byte), hash it
//! (SHA-256) and pick the values at the key and change-time paths.
//!
//! The Python path (`retreasure.bronze.batch.JsonBatchMasker`) is the reference. This pass takes only the plain
//! shape and returns None for anything else, which then goes the Python way: an escape orjson would write back
//! escaped (a quote, a backslash, a control character) or a lone surrogate, a float or an integer beyond 64 bits,
//! a duplicate key, a declared value it may not normalise as Python does (non-ASCII, but Latin letters in an
//! e-mail address or a phone number), nesting beyond `MAX_DEPTH`, a declared path through a list, an object or
//! a list at the key or time path, a text the screen (the pattern the Python path runs over a batch with Arrow)
//! flags, or one over the limits.

mod pass;
mod tree;

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use pass::{Landed, Rules, Taken, TokenCache};
use tree::Node;

/// Bytes of a SHA-256 in hex.
const HASH_HEX: usize = 64;

/// Rows a thread takes at least: below that, starting a thread costs more than it saves.
const ROWS_PER_THREAD: usize = 512;

/// The pass for one entity: its declared paths, the token key, the screen and the limits; and the tokens of the
/// clear values it met (kept across batches: the same visitors recur), one memo per thread a batch is split on.
#[pyclass(frozen)]
struct DeclaredMasker {
    rules: Rules,
    tokens: Vec<Mutex<TokenCache>>,
}

#[pymethods]
impl DeclaredMasker {
    /// `tree`: the entity's PII paths as nested dicts (``PiiSpec.tree``), a kind at each leaf; `taken`: the
    /// dotted paths whose values are returned (the key, the change time); `screen`: the pattern a compact text
    /// must not match (None: no screen here, the caller screens).
    #[new]
    #[pyo3(signature = (tree, hmac_key, taken, screen, max_line_bytes, max_text_bytes, max_brackets))]
    fn new(
        tree: &Bound<'_, PyDict>,
        hmac_key: &[u8],
        taken: Vec<String>,
        screen: Option<&str>,
        max_line_bytes: usize,
        max_text_bytes: usize,
        max_brackets: usize,
    ) -> PyResult<Self> {
        let mut root = Node::from_pii_tree(tree)?;
        for (slot, path) in taken.iter().enumerate() {
            root.add_taken(path, slot);
        }
        let screen = match screen {
            Some(pattern) => Some(
                // A lazy DFA cache big enough for the screen's many counted repeats, so it is not rebuilt per text.
                regex::bytes::RegexBuilder::new(pattern)
                    .dfa_size_limit(64 << 20)
                    .build()
                    .map_err(|error| pyo3::exceptions::PyValueError::new_err(error.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            rules: Rules::new(
                root,
                hmac_key,
                taken.len(),
                screen,
                max_line_bytes,
                max_text_bytes,
                max_brackets,
            ),
            // A batch is worked on as many threads as the machine has cores (it holds no GIL), at most four.
            tokens: (0..std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
                .map(|_| Mutex::new(TokenCache::default()))
                .collect(),
        })
    }

    /// The batch `values` (bytes, or None) as buffers Arrow takes without a copy, no Python object per row:
    /// (texts, text offsets, landed, hashes, taken, token_rows, tokens, kinds, clear).
    /// - texts: the compact texts of the rows landed, one after the other; text offsets: int32, a row's text
    ///   from its offset to the next one's (empty for a row the Python way takes); landed: a byte per row, 1
    ///   where this pass landed it;
    /// - hashes: per row, the SHA-256 of its text in 64 hex digits (zeros for a row not landed);
    /// - taken: per taken path, (texts, offsets, kinds) of the value at it: its text where it is a string, and
    ///   a kind byte per row (0: absent or null, or the row not landed; 1: a string; 2: a number or a boolean);
    /// - per token first given in the batch, in row order: its row, the token, its kind and the clear value (a
    ///   token met again later in the batch is not repeated: the vault keeps a token's first clear value).
    ///
    /// The GIL is released while the batch is worked.
    fn texts<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let held: Vec<Option<Bound<'py, PyBytes>>> = values
            .iter()
            .map(|value| value.cast_into::<PyBytes>().ok())
            .collect();
        let slices: Vec<Option<&[u8]>> = held
            .iter()
            .map(|value| value.as_ref().map(|b| b.as_bytes()))
            .collect();
        let rules = &self.rules;
        let tokens = &self.tokens;
        let columns = py.detach(|| Columns::split(rules, &slices, tokens));
        let bytes = |data: &[u8]| PyBytes::new(py, data).into_any();
        let mut taken = Vec::with_capacity(columns.taken.len());
        for column in &columns.taken {
            let parts = [column.texts.as_slice(), &column.offsets, &column.kinds];
            taken.push(PyTuple::new(py, parts.map(bytes))?);
        }
        let taken = PyTuple::new(py, taken)?;
        let (token_rows, token_texts, kinds, clear) = (
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
        );
        for (row, change) in &columns.tokens {
            token_rows.append(*row)?;
            token_texts.append(change.token.as_str())?;
            kinds.append(change.kind.as_str())?;
            clear.append(change.value.as_str())?;
        }
        PyTuple::new(
            py,
            [
                bytes(&columns.texts),
                bytes(&columns.offsets),
                bytes(&columns.landed),
                bytes(&columns.hashes),
                taken.into_any(),
                token_rows.into_any(),
                token_texts.into_any(),
                kinds.into_any(),
                clear.into_any(),
            ],
        )
    }
}

/// A batch's results as Arrow's buffers (see ``DeclaredMasker.texts``).
struct Columns {
    texts: Vec<u8>,
    offsets: Vec<u8>,
    landed: Vec<u8>,
    hashes: Vec<u8>,
    taken: Vec<TakenColumn>,
    tokens: Vec<(usize, pass::Change)>,
}

/// The values at one taken path.
#[derive(Default)]
struct TakenColumn {
    texts: Vec<u8>,
    offsets: Vec<u8>,
    kinds: Vec<u8>,
}

impl TakenColumn {
    fn push(&mut self, value: Option<&Taken>) {
        let kind = match value {
            Some(Taken::Text(text)) => {
                self.texts.extend_from_slice(text.as_bytes());
                1
            }
            Some(Taken::Other) => 2,
            Some(Taken::Absent) | None => 0,
        };
        self.kinds.push(kind);
        push_offset(&mut self.offsets, self.texts.len());
    }
}

/// An int32 offset, as Arrow's string arrays hold them (the caller keeps `at` within int32).
fn push_offset(offsets: &mut Vec<u8>, at: usize) {
    let at = i32::try_from(at).expect("offsets kept within int32");
    offsets.extend_from_slice(&at.to_ne_bytes());
}

/// A thread's token memo. A memo only: one a panicking thread left half-written still maps values to their tokens.
fn memo(at: &Mutex<TokenCache>) -> MutexGuard<'_, TokenCache> {
    at.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A part's int32 offsets after a joined column's, moved on by `base` bytes (its leading zero dropped).
fn append_offsets(offsets: &mut Vec<u8>, more: &[u8], base: usize) {
    for at in more.chunks_exact(4).skip(1) {
        let at = i32::from_ne_bytes(at.try_into().expect("four bytes")) as usize;
        push_offset(offsets, base + at);
    }
}

impl Columns {
    /// `of` over the whole batch, its rows split in consecutive parts over threads (one token memo each): the same
    /// columns as one pass over it, joined in row order.
    fn split(rules: &Rules, values: &[Option<&[u8]>], memos: &[Mutex<TokenCache>]) -> Self {
        let parts = memos.len().min(values.len() / ROWS_PER_THREAD).max(1);
        if parts == 1 {
            return Self::of(rules, values, &mut memo(&memos[0]));
        }
        let size = values.len().div_ceil(parts);
        let worked: Vec<Self> = std::thread::scope(|scope| {
            let threads: Vec<_> = values
                .chunks(size)
                .zip(memos)
                .map(|(rows, at)| scope.spawn(move || Self::of(rules, rows, &mut memo(at))))
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().expect("a part of the native pass failed"))
                .collect()
        });
        if worked.iter().map(|part| part.texts.len()).sum::<usize>() > i32::MAX as usize {
            // Beyond what int32 offsets reach once joined: one pass, which sends the rows beyond the Python way.
            return Self::of(rules, values, &mut memo(&memos[0]));
        }
        Self::join(worked, size)
    }

    /// Parts of `size` rows each (the last maybe fewer), in row order, as one batch's columns: offsets moved on by
    /// the bytes before them, token rows by the rows before them, a token given in an earlier part not given again.
    fn join(parts: Vec<Self>, size: usize) -> Self {
        let mut parts = parts.into_iter();
        let mut joined = parts.next().expect("at least one part");
        let mut given: HashSet<String> =
            joined.tokens.iter().map(|(_, c)| c.token.clone()).collect();
        for (index, part) in parts.enumerate() {
            append_offsets(&mut joined.offsets, &part.offsets, joined.texts.len());
            joined.texts.extend_from_slice(&part.texts);
            joined.landed.extend_from_slice(&part.landed);
            joined.hashes.extend_from_slice(&part.hashes);
            for (column, more) in joined.taken.iter_mut().zip(part.taken) {
                append_offsets(&mut column.offsets, &more.offsets, column.texts.len());
                column.texts.extend_from_slice(&more.texts);
                column.kinds.extend_from_slice(&more.kinds);
            }
            let rows_before = (index + 1) * size;
            for (row, change) in part.tokens {
                if given.insert(change.token.clone()) {
                    joined.tokens.push((rows_before + row, change));
                }
            }
        }
        joined
    }

    fn of(rules: &Rules, values: &[Option<&[u8]>], cache: &mut TokenCache) -> Self {
        let count = values.len();
        let mut texts =
            Vec::with_capacity(values.iter().map(|v| v.map_or(0, <[u8]>::len) + 64).sum());
        let mut offsets = Vec::with_capacity((count + 1) * 4);
        let mut landed = Vec::with_capacity(count);
        let mut hashes = Vec::with_capacity(count * HASH_HEX);
        let mut taken: Vec<TakenColumn> = (0..rules.taken_paths())
            .map(|_| TakenColumn::default())
            .collect();
        for column in &mut taken {
            push_offset(&mut column.offsets, 0);
        }
        let mut tokens = Vec::new();
        let mut given: HashSet<String> = HashSet::new();
        push_offset(&mut offsets, 0);
        for (row, value) in values.iter().enumerate() {
            let start = texts.len();
            let mut done: Option<Landed> = value.and_then(|v| rules.land(v, &mut texts, cache));
            if texts.len() > i32::MAX as usize {
                // Beyond what int32 offsets reach: this row and the rest go the Python way.
                texts.truncate(start);
                done = None;
            }
            push_offset(&mut offsets, texts.len());
            let Some(done) = done else {
                landed.push(0);
                hashes.resize(hashes.len() + HASH_HEX, b'0');
                for column in &mut taken {
                    column.push(None);
                }
                continue;
            };
            landed.push(1);
            pass::hex_into(&done.hash, &mut hashes);
            for (column, value) in taken.iter_mut().zip(&done.taken) {
                column.push(Some(value));
            }
            for change in done.tokens {
                if !given.contains(&change.token) {
                    given.insert(change.token.clone());
                    tokens.push((row, change));
                }
            }
        }
        Self {
            texts,
            offsets,
            landed,
            hashes,
            taken,
            tokens,
        }
    }
}

#[pymodule]
fn retreasure_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<DeclaredMasker>()?;
    Ok(())
}

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

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use pass::{Landed, Rules, Taken};
use tree::Node;

/// The pass for one entity: its declared paths, the token key, the screen and the limits.
#[pyclass(frozen)]
struct DeclaredMasker {
    rules: Rules,
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
        })
    }

    /// The batch `values` (bytes, or None) in columns, few Python containers made (the collector's passes cost
    /// more than the work): (texts, hashes, taken, token_rows, tokens, kinds, clear). Per value, its compact text
    /// and SHA-256 hex, or None for the Python path; per taken path, a list of the values at it (None where the
    /// row went the Python way); per declared value tokenised, in order, its row, token, kind and clear value.
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
        let (landed, arena) = py.detach(|| {
            let mut arena = Vec::with_capacity(
                slices
                    .iter()
                    .map(|value| value.map_or(0, <[u8]>::len) + 64)
                    .sum(),
            );
            let landed: Vec<Option<Landed>> = slices
                .iter()
                .map(|value| value.and_then(|v| rules.land(v, &mut arena)))
                .collect();
            (landed, arena)
        });
        let texts = PyList::empty(py);
        let hashes = PyList::empty(py);
        let taken: Vec<Bound<'py, PyList>> = (0..rules.taken_paths())
            .map(|_| PyList::empty(py))
            .collect();
        let (token_rows, tokens, kinds, clear) = (
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
        );
        for (row, done) in landed.into_iter().enumerate() {
            let Some(done) = done else {
                texts.append(py.None())?;
                hashes.append(py.None())?;
                for column in &taken {
                    column.append(py.None())?;
                }
                continue;
            };
            texts.append(PyBytes::new(py, &arena[done.text.clone()]))?;
            hashes.append(PyString::new(py, &pass::hex(&done.hash)))?;
            for (column, value) in taken.iter().zip(&done.taken) {
                column.append(taken_value(py, value)?)?;
            }
            for change in &done.tokens {
                token_rows.append(row)?;
                tokens.append(change.token.as_str())?;
                kinds.append(change.kind.as_str())?;
                clear.append(change.value.as_str())?;
            }
        }
        PyTuple::new(
            py,
            [
                texts.into_any(),
                hashes.into_any(),
                PyTuple::new(py, taken)?.into_any(),
                token_rows.into_any(),
                tokens.into_any(),
                kinds.into_any(),
                clear.into_any(),
            ],
        )
    }
}

fn taken_value<'py>(py: Python<'py>, value: &Taken) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Taken::Absent => py.None().into_bound(py),
        Taken::Text(text) => PyString::new(py, text).into_any(),
        Taken::Signed(number) => number.into_pyobject(py)?.into_any(),
        Taken::Unsigned(number) => number.into_pyobject(py)?.into_any(),
        Taken::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
    })
}

#[pymodule]
fn retreasure_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<DeclaredMasker>()?;
    Ok(())
}

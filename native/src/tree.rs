//! The paths a pass follows, key by key: the declared PII paths (a kind at each leaf) and the taken paths (the
//! key and the change time), merged in one tree so each object's keys are looked up once.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

/// What applies under one key of an object.
#[derive(Default)]
pub struct Child {
    /// A declared PII leaf: its kind, and its place in the declared tree's depth-first order (the order the
    /// Python masker lists its tokens in).
    pub pii: Option<(String, usize)>,
    /// The key passes into the declared tree: a list here sends the record the Python way (its masker walks
    /// lists).
    pub pii_branch: bool,
    /// A taken path ends here: its slot in the result.
    pub taken: Option<usize>,
    /// What applies inside the object under this key.
    pub node: Option<Node>,
}

#[derive(Default)]
pub struct Node {
    children: Vec<(Vec<u8>, Child)>,
}

impl Node {
    /// The tree of ``PiiSpec.tree``: nested dicts, a kind (str) at each leaf.
    pub fn from_pii_tree(tree: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut order = 0;
        Self::from_dict(tree, &mut order)
    }

    fn from_dict(tree: &Bound<'_, PyDict>, order: &mut usize) -> PyResult<Self> {
        let mut node = Node::default();
        for (key, sub) in tree.iter() {
            let name: String = key.extract()?;
            let mut child = Child::default();
            if let Ok(kind) = sub.cast::<PyString>() {
                child.pii = Some((kind.to_str()?.to_owned(), *order));
                *order += 1;
            } else {
                child.pii_branch = true;
                child.node = Some(Self::from_dict(sub.cast::<PyDict>()?, order)?);
            }
            node.children.push((name.into_bytes(), child));
        }
        Ok(node)
    }

    /// Add a dotted path whose value is returned in `slot`.
    pub fn add_taken(&mut self, path: &str, slot: usize) {
        let mut node = self;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let at = match node
                .children
                .iter()
                .position(|(name, _)| name == part.as_bytes())
            {
                Some(at) => at,
                None => {
                    node.children
                        .push((part.as_bytes().to_vec(), Child::default()));
                    node.children.len() - 1
                }
            };
            let child = &mut node.children[at].1;
            if parts.peek().is_none() {
                child.taken = Some(slot);
                return;
            }
            node = child.node.get_or_insert_with(Node::default);
        }
    }

    /// What applies under `key` (exact name), if anything.
    #[inline]
    pub fn child(&self, key: &[u8]) -> Option<&Child> {
        self.children
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, child)| child)
    }
}

//! A compact decimal digit trie: the longest-prefix structure behind operators and rates.
//!
//! Nodes are laid out breadth first, so a node's children sit next to each other and are found
//! with a 10-bit mask and a popcount: one 16-byte node per digit walked, no pointers chased
//! through separate allocations, no allocation per lookup.

#[derive(Debug, Clone, Copy, Default)]
struct Node {
    first_child: u32,
    values_start: u32,
    values_len: u32,
    mask: u16,
}

/// Maps digit-string prefixes to values; a walk yields every stored prefix of a number,
/// shortest first.
#[derive(Debug, Clone)]
pub(crate) struct PrefixTrie<V> {
    nodes: Vec<Node>,
    values: Vec<V>,
}

impl<V> PrefixTrie<V> {
    /// Builds from `(digits, value)` pairs; values of one prefix keep their given order.
    /// Every byte of `digits` must be an ASCII digit (the parsers guarantee it).
    pub(crate) fn build(items: impl IntoIterator<Item = (Vec<u8>, V)>) -> PrefixTrie<V> {
        let mut children: Vec<[u32; 10]> = vec![[0; 10]];
        let mut vals: Vec<Vec<V>> = vec![Vec::new()];
        for (digits, value) in items {
            let mut n = 0usize;
            for &b in &digits {
                let d = usize::from(b.wrapping_sub(b'0')).min(9);
                if children[n][d] == 0 {
                    children.push([0; 10]);
                    vals.push(Vec::new());
                    children[n][d] = (children.len() - 1) as u32;
                }
                n = children[n][d] as usize;
            }
            vals[n].push(value);
        }
        // Breadth-first order makes each node's children contiguous.
        let mut order = vec![0u32];
        let mut i = 0;
        while i < order.len() {
            let n = order[i] as usize;
            order.extend(children[n].iter().copied().filter(|&c| c != 0));
            i += 1;
        }
        let mut new_index = vec![0u32; children.len()];
        for (pos, &old) in order.iter().enumerate() {
            new_index[old as usize] = pos as u32;
        }
        let mut nodes = Vec::with_capacity(order.len());
        let mut values = Vec::new();
        let mut vals: Vec<Option<Vec<V>>> = vals.into_iter().map(Some).collect();
        for &old in &order {
            let old = old as usize;
            let mut mask = 0u16;
            let mut first_child = 0u32;
            for (d, &c) in children[old].iter().enumerate() {
                if c != 0 {
                    if mask == 0 {
                        first_child = new_index[c as usize];
                    }
                    mask |= 1 << d;
                }
            }
            let own = vals[old].take().unwrap_or_default();
            nodes.push(Node {
                first_child,
                values_start: values.len() as u32,
                values_len: own.len() as u32,
                mask,
            });
            values.extend(own);
        }
        PrefixTrie { nodes, values }
    }

    /// Calls `f(depth, values)` for every stored prefix of `digits` that has values, from the
    /// shortest (depth 0, the empty prefix) to the longest.
    #[inline]
    pub(crate) fn walk<'a>(&'a self, digits: &[u8], mut f: impl FnMut(usize, &'a [V])) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        let mut depth = 0;
        loop {
            if node.values_len != 0 {
                let s = node.values_start as usize;
                f(depth, &self.values[s..s + node.values_len as usize]);
            }
            let Some(&b) = digits.get(depth) else {
                return;
            };
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return;
            }
            let bit = 1u16 << d;
            if node.mask & bit == 0 {
                return;
            }
            let idx = node.first_child + (node.mask & (bit - 1)).count_ones();
            node = &self.nodes[idx as usize];
            depth += 1;
        }
    }

    /// The values of the longest stored prefix of `digits`, with its length.
    pub(crate) fn longest(&self, digits: &[u8]) -> Option<(usize, &[V])> {
        let mut best = None;
        self.walk(digits, |depth, v| best = Some((depth, v)));
        best
    }

    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_yields_every_stored_prefix_shortest_first() {
        let t = PrefixTrie::build([
            (b"62859".to_vec(), "xl"),
            (b"628591".to_vec(), "axis"),
            (b"62".to_vec(), "id"),
            (b"62859".to_vec(), "xl2"),
            (b"1".to_vec(), "nanp"),
            (b"".to_vec(), "any"),
        ]);
        let mut seen = Vec::new();
        t.walk(b"6285912345", |d, v| seen.push((d, v.to_vec())));
        assert_eq!(
            seen,
            vec![
                (0, vec!["any"]),
                (2, vec!["id"]),
                (5, vec!["xl", "xl2"]),
                (6, vec!["axis"]),
            ]
        );
        assert_eq!(t.longest(b"6285955555"), Some((5, &["xl", "xl2"][..])));
        assert_eq!(t.longest(b"19995551234"), Some((1, &["nanp"][..])));
        assert_eq!(t.longest(b"44"), Some((0, &["any"][..])));
    }

    #[test]
    fn empty_trie_finds_nothing() {
        let t: PrefixTrie<u8> = PrefixTrie::build([]);
        assert_eq!(t.longest(b"62"), None);
        assert_eq!(t.node_count(), 1);
    }
}

//! The dependency graph between targets and its root-cause rule.
//!
//! Targets name what they need (`depends_on`). When a target is impaired while something it
//! depends on (directly or further down) is impaired too, it is *blocked*: its trouble is
//! explained by a **root**, an impaired target none of whose own dependencies is impaired.
//! The monitor alerts on roots, shows the others as "blocked by <root>", and names in the
//! root's alert the dependents it took down.
//!
//! Nodes are indices `0..n`; the caller keeps the names. What it is not: it knows no state
//! names (the caller says which nodes are impaired) and reads no clock.

use std::collections::BTreeSet;

/// Edges from each node to the nodes it depends on, and back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    needs: Vec<Vec<usize>>,
    needed_by: Vec<Vec<usize>>,
}

/// A cycle among the dependencies, in order: `[a, b, c]` means a → b → c → a.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle through nodes {0:?}")]
pub struct Cycle(pub Vec<usize>);

impl Graph {
    /// `needs[i]` lists what node `i` depends on. Indices out of range are ignored; a cycle is
    /// an error that names it.
    pub fn new(needs: Vec<Vec<usize>>) -> Result<Graph, Cycle> {
        let n = needs.len();
        let needs: Vec<Vec<usize>> = needs
            .into_iter()
            .map(|deps| {
                let set: BTreeSet<usize> = deps.into_iter().filter(|&d| d < n).collect();
                set.into_iter().collect()
            })
            .collect();
        if let Some(cycle) = find_cycle(&needs) {
            return Err(Cycle(cycle));
        }
        let mut needed_by = vec![Vec::new(); n];
        for (node, deps) in needs.iter().enumerate() {
            for &dep in deps {
                needed_by[dep].push(node);
            }
        }
        Ok(Graph { needs, needed_by })
    }

    pub fn len(&self) -> usize {
        self.needs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.needs.is_empty()
    }

    /// What `node` depends on directly.
    pub fn needs(&self, node: usize) -> &[usize] {
        self.needs.get(node).map_or(&[], Vec::as_slice)
    }

    /// What depends on `node` directly.
    pub fn needed_by(&self, node: usize) -> &[usize] {
        self.needed_by.get(node).map_or(&[], Vec::as_slice)
    }

    /// The roots that explain `node`'s trouble: impaired nodes it depends on (transitively)
    /// through a chain of impaired nodes, none of whose own dependencies is impaired. Empty
    /// when `node` is not blocked (it may be a root itself). Sorted, without duplicates.
    pub fn roots_of(&self, node: usize, impaired: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut roots = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = self
            .needs(node)
            .iter()
            .copied()
            .filter(|&d| impaired(d))
            .collect();
        while let Some(current) = stack.pop() {
            if !seen.insert(current) {
                continue;
            }
            let below: Vec<usize> = self
                .needs(current)
                .iter()
                .copied()
                .filter(|&d| impaired(d))
                .collect();
            if below.is_empty() {
                roots.insert(current);
            } else {
                stack.extend(below);
            }
        }
        roots.into_iter().collect()
    }

    /// The impaired nodes that `root`'s trouble explains: everything impaired that depends on
    /// it through a chain of impaired nodes. Sorted; `root` itself is not included.
    pub fn blocked_by(&self, root: usize, impaired: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut found = BTreeSet::new();
        let mut stack: Vec<usize> = self.needed_by(root).to_vec();
        while let Some(current) = stack.pop() {
            if impaired(current) && found.insert(current) {
                stack.extend_from_slice(self.needed_by(current));
            }
        }
        found.into_iter().collect()
    }
}

/// A cycle in `needs`, if any (iterative depth-first search with colours).
fn find_cycle(needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; needs.len()];
    for start in 0..needs.len() {
        if colour[start] != Colour::White {
            continue;
        }
        // (node, next edge to try); the stack is the current path.
        let mut stack = vec![(start, 0usize)];
        colour[start] = Colour::Grey;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some(&next) = needs[node].get(*edge) {
                *edge += 1;
                match colour[next] {
                    Colour::White => {
                        colour[next] = Colour::Grey;
                        stack.push((next, 0));
                    }
                    Colour::Grey => {
                        let from = stack.iter().position(|&(n, _)| n == next).unwrap_or(0);
                        return Some(stack[from..].iter().map(|&(n, _)| n).collect());
                    }
                    Colour::Black => {}
                }
            } else {
                colour[node] = Colour::Black;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// db ← api ← web, db ← worker, cache ← api (api needs db and cache).
    fn shop() -> Graph {
        // 0 db, 1 cache, 2 api, 3 web, 4 worker
        Graph::new(vec![vec![], vec![], vec![0, 1], vec![2], vec![0]]).unwrap()
    }

    #[test]
    fn a_failing_dependency_is_the_root_of_its_impaired_dependents() {
        let g = shop();
        let impaired = |n: usize| [0, 2, 3, 4].contains(&n);
        assert_eq!(g.roots_of(3, impaired), [0]);
        assert_eq!(g.roots_of(2, impaired), [0]);
        assert_eq!(g.roots_of(0, impaired), Vec::<usize>::new());
        assert_eq!(g.blocked_by(0, impaired), [2, 3, 4]);
    }

    #[test]
    fn a_healthy_link_in_the_chain_stops_the_blame() {
        let g = shop();
        // api is fine: web's trouble is its own, even though db is down.
        let impaired = |n: usize| [0, 3].contains(&n);
        assert!(g.roots_of(3, impaired).is_empty());
        assert!(g.blocked_by(0, impaired).is_empty());
    }

    #[test]
    fn two_roots_are_both_named() {
        let g = shop();
        let impaired = |n: usize| [0, 1, 2].contains(&n);
        assert_eq!(g.roots_of(2, impaired), [0, 1]);
        assert_eq!(g.blocked_by(1, impaired), [2]);
    }

    #[test]
    fn a_cycle_is_named_in_order() {
        let cycle = Graph::new(vec![vec![1], vec![2], vec![0], vec![]]).unwrap_err();
        assert_eq!(cycle.0.len(), 3);
        assert!(Graph::new(vec![vec![0]]).is_err(), "a node needing itself");
        assert!(
            Graph::new(vec![vec![5]]).is_ok(),
            "unknown nodes are ignored"
        );
    }

    proptest! {
        /// On random DAGs (edges only to lower indices) with random impaired sets: a root is
        /// impaired with no impaired dependency, every blocked node names the root, and a node
        /// is blocked exactly when it has an impaired dependency.
        #[test]
        fn roots_and_blocked_agree(
            edges in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..3), 1..12),
            impaired_bits in any::<u16>(),
        ) {
            let needs: Vec<Vec<usize>> = edges
                .iter()
                .enumerate()
                .map(|(i, deps)| if i == 0 { vec![] } else { deps.iter().map(|d| d.index(i)).collect() })
                .collect();
            let g = Graph::new(needs).unwrap();
            let impaired = |n: usize| impaired_bits & (1 << n) != 0;
            for node in 0..g.len() {
                if !impaired(node) {
                    continue;
                }
                let roots = g.roots_of(node, impaired);
                let has_impaired_dep = g.needs(node).iter().any(|&d| impaired(d));
                prop_assert_eq!(!roots.is_empty(), has_impaired_dep);
                for root in roots {
                    prop_assert!(impaired(root));
                    prop_assert!(g.needs(root).iter().all(|&d| !impaired(d)));
                    prop_assert!(g.blocked_by(root, impaired).contains(&node));
                }
            }
        }
    }
}

//! KernelSHAP (Lundberg & Lee, 2017): which feature coalitions to evaluate, and the constrained
//! weighted least-squares fit that turns their values into per-feature attributions. Nothing
//! here runs a model: the caller evaluates each coalition (features in it take the explained
//! row's values, the rest take background values, averaged over the background rows) and passes
//! the values to [`solve`]. Everything is deterministic given the seed.

use std::collections::HashMap;

/// Coalitions to evaluate and their regression weights.
pub(crate) struct Coalitions {
    /// Number of features the plan is for; [`solve`] needs it when there are no masks at all.
    pub features: usize,
    /// One mask per coalition: `true` = the feature takes the explained row's value. Never
    /// all-true or all-false (those are the fixed `full` and `base` values of [`solve`]).
    pub masks: Vec<Vec<bool>>,
    /// Regression weight of each mask (same length as masks).
    pub weights: Vec<f64>,
    /// Whether every coalition was enumerated (then the result is the exact Shapley value of
    /// the game).
    pub exact: bool,
}

/// Plans at most `budget` coalitions for `features` features.
///
/// Subset sizes are taken in complementary pairs (`k` with `features - k`), smallest `k`
/// first, because the Shapley kernel puts most of its mass on very small and very large
/// coalitions. A size class is enumerated in full, each subset with its exact kernel weight
/// `w(s) = (M-1) / (C(M,s) s (M-s))`, when all `2^M - 2` coalitions fit the budget, or when its
/// subset count fits both the remaining budget and that budget's share proportional to the
/// class's kernel mass `(M-1)/(s(M-s))` (the approach of the `shap` library). The first class
/// that does not fit ends enumeration; the remaining budget is then sampled from the remaining
/// classes: a class with probability proportional to its kernel mass, a uniform subset of size
/// `k`, and its complement with it (paired sampling). Duplicates merge by summing their counts,
/// and the sampled weights are scaled so they total the remaining kernel mass, so every mask's
/// expected weight is its exact kernel weight. Sampling stops when the budget is full or after
/// four draws per remaining budget slot (plus 16), so a plan that keeps drawing repeats can
/// hold fewer masks than the budget.
///
/// Edge cases: `features` 0 or 1 gives no masks and `exact = true` (a single feature takes the
/// whole difference `full - base`); `budget < 2` with two or more features gives no masks and
/// `exact = false`, and [`solve`] then splits `full - base` equally.
pub(crate) fn plan(features: usize, budget: usize, seed: u64) -> Coalitions {
    let m = features;
    let mut out = Coalitions {
        features: m,
        masks: Vec::new(),
        weights: Vec::new(),
        exact: m < 2,
    };
    if m < 2 {
        return out;
    }
    let fits_all = u32::try_from(m)
        .ok()
        .and_then(|bits| 1usize.checked_shl(bits))
        .is_some_and(|all| all - 2 <= budget);
    let kernel = |s: usize| (m - 1) as f64 / (s as f64 * (m - s) as f64);
    // Sizes k and m - k form one class; the middle size of an even m is a class on its own.
    let sides = |k: usize| if 2 * k == m { 1 } else { 2 };
    // (k, kernel mass of the class).
    let classes: Vec<(usize, f64)> = (1..=m / 2)
        .map(|k| (k, sides(k) as f64 * kernel(k)))
        .collect();
    let mut budget_left = budget;
    let mut next = 0;
    for &(k, mass) in &classes {
        let Some(per_size) = binomial(m, k) else {
            break;
        };
        let count = per_size.checked_mul(sides(k));
        let Some(count) = count.filter(|&c| c <= budget_left) else {
            break;
        };
        let mass_left: f64 = classes[next..].iter().map(|c| c.1).sum();
        let share = budget_left as f64 * mass / mass_left;
        if !fits_all && share < count as f64 * (1.0 - 1e-9) {
            break;
        }
        let weight = kernel(k) / per_size as f64;
        for_each_subset(m, k, |members| {
            let mut mask = vec![false; m];
            for &f in members {
                mask[f] = true;
            }
            if 2 * k != m {
                out.masks.push(mask.iter().map(|&b| !b).collect());
                out.weights.push(weight);
            }
            out.masks.push(mask);
            out.weights.push(weight);
        });
        budget_left -= count;
        next += 1;
    }
    let rest = &classes[next..];
    if rest.is_empty() {
        out.exact = true;
        return out;
    }
    let rest_mass: f64 = rest.iter().map(|c| c.1).sum();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut seen: HashMap<Vec<bool>, usize> = HashMap::new();
    let mut order: Vec<usize> = (0..m).collect();
    let start = out.masks.len();
    let max_draws = budget_left.saturating_mul(4).saturating_add(16);
    let mut draws = 0usize;
    while out.masks.len() - start + 2 <= budget_left && draws < max_draws {
        draws += 1;
        let mut u = rng.f64() * rest_mass;
        let mut k = rest[rest.len() - 1].0;
        for &(size, mass) in rest {
            if u < mass {
                k = size;
                break;
            }
            u -= mass;
        }
        // Partial Fisher-Yates: the first k entries become a uniform k-subset.
        for i in 0..k {
            order.swap(i, rng.usize(i..m));
        }
        let mut mask = vec![false; m];
        for &f in &order[..k] {
            mask[f] = true;
        }
        let complement: Vec<bool> = mask.iter().map(|&b| !b).collect();
        for candidate in [mask, complement] {
            if let Some(&i) = seen.get(&candidate) {
                out.weights[i] += 1.0;
            } else {
                seen.insert(candidate.clone(), out.masks.len());
                out.masks.push(candidate);
                out.weights.push(1.0);
            }
        }
    }
    if draws > 0 {
        let scale = rest_mass / (2 * draws) as f64;
        out.weights[start..].iter_mut().for_each(|w| *w *= scale);
    }
    out
}

/// Returns `phi[o][f]`, the attribution of feature `f` to output `o`.
///
/// `values[c][o]` is output `o` on coalition `c` of `coalitions`, `base[o]` the value with no
/// feature (the background mean) and `full[o]` the value on the explained row. Efficiency,
/// `sum_f phi[o][f] == full[o] - base[o]`, holds exactly: the last feature is eliminated as
/// `full - base - sum(others)`, and the others minimise the weighted squared error of the
/// additive model over the coalitions (Cholesky on the normal equations, factored once for all
/// outputs). If the system is singular (too few coalitions, or features that never appear
/// apart) a tiny ridge pulling every feature, the eliminated one included, towards zero is
/// added, which splits indistinguishable credit evenly instead of dumping it on the last one.
///
/// `features` 0 gives one empty vector per output; 1 gives `full - base`. `values` must hold
/// one row of `base.len()` outputs per mask: a missing value is a caller bug (debug builds
/// assert the lengths); it counts as zero residual rather than panicking.
pub(crate) fn solve(
    coalitions: &Coalitions,
    values: &[Vec<f64>],
    base: &[f64],
    full: &[f64],
) -> Vec<Vec<f64>> {
    debug_assert_eq!(values.len(), coalitions.masks.len());
    debug_assert_eq!(base.len(), full.len());
    let m = coalitions.features;
    let gap: Vec<f64> = base
        .iter()
        .enumerate()
        .map(|(o, &b)| full.get(o).map_or(0.0, |&f| f - b))
        .collect();
    if m < 2 {
        return gap.iter().map(|&g| vec![g; m]).collect();
    }
    let n = m - 1;
    let mut a = vec![0.0; n * n];
    let mut rhs = vec![vec![0.0; n]; base.len()];
    let mut nonzero = Vec::with_capacity(n);
    for (c, (mask, &w)) in coalitions.masks.iter().zip(&coalitions.weights).enumerate() {
        // Regressor f is z_f - z_last: `sign` where the mask differs from the last feature, else
        // 0. A mask and its complement both touch only min(size, m - size) entries.
        let in_mask = |f: usize| mask.get(f) == Some(&true);
        let last = if in_mask(n) { 1.0 } else { 0.0 };
        let sign = 1.0 - 2.0 * last;
        nonzero.clear();
        nonzero.extend((0..n).filter(|&f| in_mask(f) != in_mask(n)));
        for (p, &i) in nonzero.iter().enumerate() {
            for &j in &nonzero[..=p] {
                a[i * n + j] += w;
            }
        }
        for (o, r) in rhs.iter_mut().enumerate() {
            let fitted = base[o] + last * gap[o];
            let v = values
                .get(c)
                .and_then(|row| row.get(o))
                .map_or(fitted, |&v| v);
            let y = sign * w * (v - fitted);
            nonzero.iter().for_each(|&i| r[i] += y);
        }
    }
    let factor = cholesky(&a, n).or_else(|| {
        let mean_diag = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n as f64;
        let lambda = if mean_diag > 0.0 {
            1e-9 * mean_diag
        } else {
            1.0
        };
        // Penalising lambda * (sum_{f<n} phi_f^2 + phi_n^2) with phi_n = gap - sum adds
        // lambda * (I + 11^T) to the matrix and lambda * gap to every right-hand side entry.
        for i in 0..n {
            a[i * n + i] += lambda;
            for j in 0..=i {
                a[i * n + j] += lambda;
            }
        }
        for (r, &g) in rhs.iter_mut().zip(&gap) {
            r.iter_mut().for_each(|ri| *ri += lambda * g);
        }
        cholesky(&a, n)
    });
    rhs.into_iter()
        .zip(&gap)
        .map(|(r, &g)| {
            let mut phi = match &factor {
                Some(l) => cholesky_solve(l, n, r),
                // Only reachable with non-finite inputs: fall back to an even split.
                None => vec![g / m as f64; n],
            };
            let rest: f64 = phi.iter().sum();
            phi.push(g - rest);
            phi
        })
        .collect()
}

/// `C(n, k)`, or `None` if it does not fit a `usize` (then it cannot fit any budget either).
fn binomial(n: usize, k: usize) -> Option<usize> {
    let mut c: u128 = 1;
    for i in 0..k.min(n - k) {
        c = c.checked_mul((n - i) as u128)? / (i as u128 + 1);
    }
    usize::try_from(c).ok()
}

/// Calls `visit` with every `k`-subset of `0..n` (as sorted indices), in lexicographic order.
fn for_each_subset(n: usize, k: usize, mut visit: impl FnMut(&[usize])) {
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        visit(&idx);
        // Advance the rightmost index that still has room, then reset the ones after it.
        let Some(i) = (0..k).rev().find(|&i| idx[i] < n - k + i) else {
            return;
        };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// Lower Cholesky factor of the symmetric `n×n` matrix whose lower triangle is in `a`
/// (row-major), or `None` if a pivot is not clearly positive (singular or not finite).
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let max_diag = (0..n).map(|i| a[i * n + i]).fold(0.0, f64::max);
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| l[j * n + k] * l[j * n + k]).sum::<f64>();
        if !d.is_finite() || d <= 1e-12 * max_diag {
            return None;
        }
        let root = d.sqrt();
        l[j * n + j] = root;
        for i in j + 1..n {
            let dot: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            l[i * n + j] = (a[i * n + j] - dot) / root;
        }
    }
    Some(l)
}

/// Solves `L L^T x = b` by forward then backward substitution.
fn cholesky_solve(l: &[f64], n: usize, mut b: Vec<f64>) -> Vec<f64> {
    for i in 0..n {
        let dot: f64 = (0..i).map(|k| l[i * n + k] * b[k]).sum();
        b[i] = (b[i] - dot) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let dot: f64 = (i + 1..n).map(|k| l[k * n + i] * b[k]).sum();
        b[i] = (b[i] - dot) / l[i * n + i];
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    type Game<'a> = dyn Fn(&[bool]) -> f64 + 'a;

    /// Plans, evaluates every game (one per output) on the plan, and solves.
    fn explain(
        m: usize,
        budget: usize,
        seed: u64,
        games: &[&Game<'_>],
    ) -> (Coalitions, Vec<Vec<f64>>) {
        let c = plan(m, budget, seed);
        let eval = |mask: &[bool]| games.iter().map(|g| g(mask)).collect::<Vec<_>>();
        let values: Vec<Vec<f64>> = c.masks.iter().map(|mask| eval(mask)).collect();
        let phi = solve(&c, &values, &eval(&vec![false; m]), &eval(&vec![true; m]));
        (c, phi)
    }

    /// Shapley values from the classic formula, over every coalition but the full one.
    fn brute_force(m: usize, game: &Game<'_>) -> Vec<f64> {
        let fact = |n: usize| (1..=n).map(|i| i as f64).product::<f64>();
        let mut phi = vec![0.0; m];
        for bits in 0u32..(1 << m) - 1 {
            let mut mask: Vec<bool> = (0..m).map(|f| bits >> f & 1 == 1).collect();
            let s = bits.count_ones() as usize;
            let (weight, without) = (fact(s) * fact(m - s - 1) / fact(m), game(&mask));
            for f in (0..m).filter(|f| bits >> f & 1 == 0) {
                mask[f] = true;
                phi[f] += weight * (game(&mask) - without);
                mask[f] = false;
            }
        }
        phi
    }

    fn coefficients(m: usize) -> Vec<f64> {
        (0..m)
            .map(|i| 2.0 * (i as f64 * 0.37 + 0.5).sin())
            .collect()
    }

    /// Additive part plus a pairwise product, a three-way product and a max of four features.
    fn mild(m: usize) -> impl Fn(&[bool]) -> f64 {
        let a = coefficients(m);
        move |s: &[bool]| {
            let x = |f: usize| if s[f] { 1.0 } else { 0.0 };
            let additive: f64 = (0..m).map(|f| a[f] * x(f)).sum();
            let max = (5..9)
                .map(|f| x(f) * (f as f64 - 4.0) * 0.1)
                .fold(0.0, f64::max);
            additive + 0.5 * x(0) * x(1) - 0.4 * x(2) * x(3) * x(4) + max + 0.7
        }
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (f, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol,
                "feature {f}: got {g}, want {w} (tol {tol})"
            );
        }
    }

    #[test]
    fn additive_game_is_recovered_exactly_and_sampled() {
        for (m, budget, exact) in [(5, 1000, true), (30, 500, false)] {
            let a = coefficients(m);
            let game = |s: &[bool]| 1.5 + (0..m).filter(|&f| s[f]).map(|f| a[f]).sum::<f64>();
            let (c, phi) = explain(m, budget, 3, &[&game]);
            assert_eq!(c.exact, exact);
            assert_close(&phi[0], &a, 1e-9);
        }
    }

    #[test]
    fn exact_enumeration_equals_brute_force_shapley() {
        for m in 4..=6 {
            let mut rng = fastrand::Rng::with_seed(m as u64);
            let tables: Vec<Vec<f64>> = (0..2)
                .map(|_| (0..1 << m).map(|_| rng.f64()).collect())
                .collect();
            let index = |s: &[bool]| (0..m).filter(|&f| s[f]).map(|f| 1 << f).sum::<usize>();
            let g0 = |s: &[bool]| tables[0][index(s)];
            let g1 =
                |s: &[bool]| tables[1][index(s)] * 3.0 - (0..m).filter(|&f| s[f]).count() as f64;
            let (c, phi) = explain(m, 1 << m, 0, &[&g0, &g1]);
            assert!(c.exact && c.masks.len() == (1 << m) - 2);
            assert_close(&phi[0], &brute_force(m, &g0), 1e-9);
            assert_close(&phi[1], &brute_force(m, &g1), 1e-9);
        }
    }

    #[test]
    fn sampled_attributions_are_efficient() {
        for (m, budget) in [(20, 300), (256, 600)] {
            let game = mild(m);
            let product = |s: &[bool]| s.iter().take(6).filter(|&&b| b).count().pow(2) as f64;
            let (c, phi) = explain(m, budget, 11, &[&game, &product]);
            assert!(!c.exact);
            let gaps = [game(&vec![true; m]) - game(&vec![false; m]), 36.0];
            for (p, gap) in phi.iter().zip(gaps) {
                assert_eq!(p.len(), m);
                assert!((p.iter().sum::<f64>() - gap).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn plans_are_deterministic_per_seed() {
        let (a, b, other) = (plan(30, 500, 7), plan(30, 500, 7), plan(30, 500, 8));
        assert_eq!((&a.masks, &a.weights), (&b.masks, &b.weights));
        assert_ne!(a.masks, other.masks);
    }

    #[test]
    fn plans_respect_budget_and_never_hold_trivial_masks() {
        let cases = [
            (2, 2),
            (2, 3),
            (3, 5),
            (7, 40),
            (10, 1021),
            (12, 3000),
            (40, 2),
            (256, 100),
        ];
        for (m, budget) in cases {
            let c = plan(m, budget, 5);
            assert!(c.masks.len() <= budget && c.masks.len() == c.weights.len());
            let mut seen = std::collections::HashSet::new();
            for (mask, &w) in c.masks.iter().zip(&c.weights) {
                assert!(mask.len() == m && mask.contains(&true) && mask.contains(&false));
                assert!(w.is_finite() && w > 0.0 && seen.insert(mask.clone()));
            }
            // Paired: every mask's complement is in the plan too.
            assert!(c
                .masks
                .iter()
                .all(|s| seen.contains(&s.iter().map(|&b| !b).collect::<Vec<_>>())));
        }
        assert!(!plan(10, 1021, 0).exact);
        let c = plan(10, 2000, 0);
        assert!(c.exact && c.masks.len() == 1022);
    }

    #[test]
    fn weights_carry_the_kernel_mass_of_each_size() {
        // Exact plan: every mask weighs w(s) = (M-1) / (C(M,s) s (M-s)).
        for (mask, &w) in plan(5, 30, 0).masks.iter().zip(&plan(5, 30, 0).weights) {
            let s = mask.iter().filter(|&&b| b).count();
            let want = 4.0 / ([1.0, 5.0, 10.0, 10.0, 5.0][s] * (s * (5 - s)) as f64);
            assert!((w - want).abs() < 1e-15, "size {s}: {w} vs {want}");
        }
        // Hybrid plan: sizes 1-4 and 8-11 are enumerated with their exact mass, 5-7 sampled
        // with about theirs (about five standard deviations of slack).
        let (mut count, mut mass) = ([0usize; 12], [0.0; 12]);
        let c = plan(12, 3000, 9);
        for (mask, &w) in c.masks.iter().zip(&c.weights) {
            let s = mask.iter().filter(|&&b| b).count();
            (count[s], mass[s]) = (count[s] + 1, mass[s] + w);
        }
        for s in 1..12 {
            let (kernel, all) = (11.0 / (s * (12 - s)) as f64, binomial(12, s).unwrap_or(0));
            let sampled = (5..=7).contains(&s);
            assert_eq!(count[s] == all, !sampled, "size {s}: {} of {all}", count[s]);
            let tol = if sampled { 0.25 * kernel } else { 1e-12 };
            assert!(
                (mass[s] - kernel).abs() < tol,
                "size {s}: {} vs {kernel}",
                mass[s]
            );
        }
    }

    #[test]
    fn sampled_estimates_are_close_to_exact_values() {
        let game = mild(12);
        let exact = brute_force(12, &game);
        for seed in 0..5 {
            let (c, phi) = explain(12, 3000, seed, &[&game]);
            assert!(!c.exact && c.masks.len() <= 3000);
            assert_close(&phi[0], &exact, 0.05);
        }
    }

    #[test]
    fn degenerate_inputs_are_handled() {
        assert!(plan(0, 10, 0).masks.is_empty() && plan(1, 10, 0).masks.is_empty());
        assert_eq!(
            solve(&plan(0, 10, 0), &[], &[1.0, 2.0], &[4.0, 2.0]),
            vec![Vec::<f64>::new(); 2]
        );
        assert_eq!(solve(&plan(1, 10, 0), &[], &[1.0], &[4.0]), vec![vec![3.0]]);
        // No room for even one pair: the difference is split evenly.
        let c = plan(4, 1, 0);
        assert!(c.masks.is_empty() && !c.exact);
        assert_close(&solve(&c, &[], &[1.0], &[9.0])[0], &[2.0; 4], 1e-12);
    }

    #[test]
    fn ridge_splits_indistinguishable_features_evenly() {
        // Features 0 and 1 never appear apart: the data only fixes their sum.
        let c = Coalitions {
            features: 3,
            masks: vec![vec![true, true, false], vec![false, false, true]],
            weights: vec![1.0, 1.0],
            exact: false,
        };
        let phi = solve(&c, &[vec![3.0], vec![3.0]], &[0.0], &[6.0]);
        assert_close(&phi[0], &[1.5, 1.5, 3.0], 1e-6);
    }
}

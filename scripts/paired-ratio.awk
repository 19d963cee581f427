# The paired ratio of two peers' timed runs, for scripts/bench: run i of A divided by run i of
# B (the two ran back to back), the median of those ratios, and a 95 % confidence interval for
# that median that assumes nothing about how the times are distributed: from the k-th smallest
# to the k-th largest ratio, k the largest rank with P(Binomial(n, 1/2) < k) <= 0.025 (so the
# interval holds the true median with at least 95 % probability). Fewer than six runs give no
# interval.
#
#   awk -v a="MS MS ..." -v b="MS MS ..." -f scripts/paired-ratio.awk
#
# prints "MEDIAN; LOW–HIGH" with two decimals, "MEDIAN; –" without an interval, and "–" when
# the two lists are empty or of different lengths.
BEGIN {
  n = split(a, x, " ")
  if (n == 0 || n != split(b, y, " ")) { print "–"; exit }
  for (i = 1; i <= n; i++) r[i] = y[i] > 0 ? x[i] / y[i] : 0
  # insertion sort: a few hundred runs at most
  for (i = 2; i <= n; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
  median = n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
  # k: P(X <= k - 1) <= 0.025 for X ~ Binomial(n, 1/2), accumulated from P(X = 0) = 2^-n.
  k = 0; p = 0.5 ^ n; below = 0
  for (i = 0; i < n; i++) {
    below += p
    if (below > 0.025) break
    k = i + 1
    p = p * (n - i) / (i + 1)
  }
  if (k == 0) printf "%.2f; –\n", median
  else printf "%.2f; %.2f–%.2f\n", median, r[k], r[n - k + 1]
}

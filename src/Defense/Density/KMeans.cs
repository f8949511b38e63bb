namespace IlgpuOct.Defense.Density;

/// <summary>
/// Lloyd's k-means with greedy k-means++ seeding (scikit-learn's defaults: 2 + ln k candidate
/// centres per step, tolerance 1e-4 times the mean per-feature variance on the squared centre
/// shift). Seeded through the <see cref="Random"/> it is given; not bit-compatible with
/// scikit-learn's random stream.
/// </summary>
public static class KMeans
{
    /// <summary>Greedy k-means++: the first centre uniformly, then the best of several D^2-sampled candidates.</summary>
    public static double[] PlusPlusCenters(
        ReadOnlySpan<double> x, // (N, D)
        int n,
        int d,
        int k,
        Random random) // (K, D) returned
    {
        ArgumentNullException.ThrowIfNull(random);
        if (k < 1 || k > n)
        {
            throw new ArgumentException($"k-means needs 1 <= k <= N points; got k = {k} with N = {n}.");
        }
        double[] xa = x.ToArray();
        var centers = new double[k * d];
        int trials = 2 + (int)Math.Log(k);
        int first = random.Next(n);
        xa.AsSpan(first * d, d).CopyTo(centers);
        var closest = new double[n];
        Parallel.For(0, n, i => closest[i] = SquaredDistance(xa, i, d, centers, 0));
        double potential = closest.Sum();
        var candidateDistances = new double[n];
        var bestDistances = new double[n];
        for (int c = 1; c < k; c++)
        {
            int best = -1;
            double bestPotential = double.PositiveInfinity;
            for (int t = 0; t < trials; t++)
            {
                int candidate = SampleProportional(closest, potential, random);
                double[] candidateCenter = xa.AsSpan(candidate * d, d).ToArray();
                Parallel.For(0, n, i => candidateDistances[i] = Math.Min(closest[i], SquaredDistance(xa, i, d, candidateCenter, 0)));
                double candidatePotential = candidateDistances.Sum();
                if (candidatePotential < bestPotential)
                {
                    bestPotential = candidatePotential;
                    best = candidate;
                    Array.Copy(candidateDistances, bestDistances, n);
                }
            }
            xa.AsSpan(best * d, d).CopyTo(centers.AsSpan(c * d, d));
            Array.Copy(bestDistances, closest, n);
            potential = bestPotential;
        }
        return centers;
    }

    /// <summary>Seeds with k-means++ and runs Lloyd's iterations; returns the centres and each point's label.</summary>
    public static (double[] Centers, int[] Labels) Fit(
        ReadOnlySpan<double> x, // (N, D)
        int n,
        int d,
        int k,
        Random random,
        int maxIterations = 300,
        double tolerance = 1e-4,
        CancellationToken cancellationToken = default)
    {
        double[] xa = x.ToArray();
        double[] centers = PlusPlusCenters(xa, n, d, k, random);
        double threshold = tolerance * MeanVariance(xa, n, d);
        var labels = new int[n];
        var distances = new double[n];
        for (int iteration = 0; iteration < maxIterations; iteration++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Assign(xa, n, d, centers, k, labels, distances);
            var updated = new double[k * d];
            var counts = new int[k];
            for (int i = 0; i < n; i++)
            {
                counts[labels[i]]++;
                DenseMath.Axpy(1.0, xa.AsSpan(i * d, d), updated.AsSpan(labels[i] * d, d));
            }
            for (int c = 0; c < k; c++)
            {
                if (counts[c] == 0)
                {
                    // An empty cluster takes the point farthest from its centre (as scikit-learn relocates them).
                    int far = Array.IndexOf(distances, distances.Max());
                    xa.AsSpan(far * d, d).CopyTo(updated.AsSpan(c * d, d));
                    distances[far] = 0;
                    continue;
                }
                for (int j = 0; j < d; j++)
                {
                    updated[c * d + j] /= counts[c];
                }
            }
            double shift = 0;
            for (int i = 0; i < updated.Length; i++)
            {
                double delta = updated[i] - centers[i];
                shift += delta * delta;
            }
            centers = updated;
            if (shift <= threshold)
            {
                break;
            }
        }
        Assign(xa, n, d, centers, k, labels, distances);
        return (centers, labels);
    }

    private static void Assign(double[] x, int n, int d, double[] centers, int k, int[] labels, double[] distances)
    {
        Parallel.For(0, n, i =>
        {
            int best = 0;
            double bestDistance = double.PositiveInfinity;
            for (int c = 0; c < k; c++)
            {
                double dist = SquaredDistance(x, i, d, centers, c);
                if (dist < bestDistance)
                {
                    bestDistance = dist;
                    best = c;
                }
            }
            labels[i] = best;
            distances[i] = bestDistance;
        });
    }

    private static double MeanVariance(double[] x, int n, int d)
    {
        double total = 0;
        for (int j = 0; j < d; j++)
        {
            double mean = 0;
            for (int i = 0; i < n; i++)
            {
                mean += x[i * d + j];
            }
            mean /= n;
            double variance = 0;
            for (int i = 0; i < n; i++)
            {
                double v = x[i * d + j] - mean;
                variance += v * v;
            }
            total += variance / n;
        }
        return total / d;
    }

    private static int SampleProportional(double[] weights, double total, Random random)
    {
        double target = random.NextDouble() * total;
        double cumulative = 0;
        for (int i = 0; i < weights.Length; i++)
        {
            cumulative += weights[i];
            if (cumulative > target)
            {
                return i;
            }
        }
        // Rounding left the target at the very end: take the last point with any weight.
        for (int i = weights.Length - 1; i >= 0; i--)
        {
            if (weights[i] > 0)
            {
                return i;
            }
        }
        return random.Next(weights.Length);
    }

    private static double SquaredDistance(double[] x, int row, int d, double[] centers, int center)
    {
        double sum = 0;
        int xo = row * d;
        int co = center * d;
        for (int j = 0; j < d; j++)
        {
            double v = x[xo + j] - centers[co + j];
            sum += v * v;
        }
        return sum;
    }
}

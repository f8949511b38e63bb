namespace IlgpuOct.Defense.Metrics;

/// <summary>A precision-recall curve as scikit-learn returns it: reversed order, ending at (precision 1, recall 0).</summary>
public sealed record PrecisionRecallCurve(
    double[] Precision, // (T + 1)
    double[] Recall, // (T + 1)
    double[] Thresholds); // (T), increasing

/// <summary>A ROC curve as scikit-learn returns it (drop_intermediate = true), starting at (0, 0).</summary>
public sealed record RocCurve(
    double[] FalsePositiveRate, // (T + 1)
    double[] TruePositiveRate, // (T + 1)
    double[] Thresholds); // (T + 1), the first is +infinity

/// <summary>
/// Ranking metrics computed exactly as scikit-learn 1.2 does: the curve points are the distinct
/// score thresholds (ties form one point), average precision is the step-wise sum
/// -sum(diff(recall) * precision[:-1]) without interpolation, and ROC AUC is the trapezoid rule
/// over the ROC points. Labels are 1 (positive) or 0 (negative); higher scores mean "more positive".
/// </summary>
public static class RankingMetrics
{
    /// <summary>scikit-learn's average_precision_score for binary labels.</summary>
    public static double AveragePrecision(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores) // labels (N), scores (N)
    {
        var curve = PrecisionRecall(labels, scores);
        double sum = 0;
        for (int i = 0; i + 1 < curve.Recall.Length; i++)
        {
            sum += (curve.Recall[i + 1] - curve.Recall[i]) * curve.Precision[i];
        }
        return -sum;
    }

    public static double AveragePrecision(ReadOnlySpan<long> labels, ReadOnlySpan<double> scores) => AveragePrecision(ToInt(labels), scores);

    /// <summary>scikit-learn's roc_auc_score for binary labels; both classes must be present.</summary>
    public static double RocAuc(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores) // labels (N), scores (N)
    {
        var curve = Roc(labels, scores);
        return Trapezoid(curve.FalsePositiveRate, curve.TruePositiveRate);
    }

    public static double RocAuc(ReadOnlySpan<long> labels, ReadOnlySpan<double> scores) => RocAuc(ToInt(labels), scores);

    /// <summary>scikit-learn's precision_recall_curve (pos_label 1, no sample weights).</summary>
    public static PrecisionRecallCurve PrecisionRecall(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores)
    {
        var (fps, tps, thresholds) = BinaryCurve(labels, scores);
        int t = tps.Length;
        double totalPositives = tps[t - 1];
        var precision = new double[t + 1];
        var recall = new double[t + 1];
        var reversedThresholds = new double[t];
        for (int i = 0; i < t; i++)
        {
            int j = t - 1 - i; // scikit-learn reverses the arrays
            double predicted = tps[j] + fps[j];
            precision[i] = predicted != 0 ? tps[j] / predicted : 0.0;
            recall[i] = totalPositives == 0 ? 1.0 : tps[j] / totalPositives; // no positives: recall is all ones (scikit-learn warns)
            reversedThresholds[i] = thresholds[j];
        }
        precision[t] = 1.0;
        recall[t] = 0.0;
        return new PrecisionRecallCurve(precision, recall, reversedThresholds);
    }

    /// <summary>scikit-learn's roc_curve with drop_intermediate (collinear points removed), pos_label 1.</summary>
    public static RocCurve Roc(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores)
    {
        var (fps, tps, thresholds) = BinaryCurve(labels, scores);
        int t = tps.Length;
        if (tps[t - 1] == 0 || fps[t - 1] == 0)
        {
            throw new ArgumentException("Only one class present in the labels: ROC AUC is not defined in that case. Pass both positives (1) and negatives (0).");
        }
        // Keep the end points and every point where the slope changes (second differences non-zero).
        var keep = new List<int>(t) { 0 };
        for (int i = 1; i + 1 < t; i++)
        {
            bool fpsBends = fps[i + 1] - 2 * fps[i] + fps[i - 1] != 0;
            bool tpsBends = tps[i + 1] - 2 * tps[i] + tps[i - 1] != 0;
            if (fpsBends || tpsBends)
            {
                keep.Add(i);
            }
        }
        if (t > 1)
        {
            keep.Add(t - 1);
        }
        var fpr = new double[keep.Count + 1];
        var tpr = new double[keep.Count + 1];
        var thr = new double[keep.Count + 1];
        thr[0] = double.PositiveInfinity;
        for (int i = 0; i < keep.Count; i++)
        {
            fpr[i + 1] = fps[keep[i]] / fps[t - 1];
            tpr[i + 1] = tps[keep[i]] / tps[t - 1];
            thr[i + 1] = thresholds[keep[i]];
        }
        return new RocCurve(fpr, tpr, thr);
    }

    /// <summary>Average precision of each class, one-vs-rest: labels (N) in [0, K), scores (N, K) row-major.</summary>
    public static double[] AveragePrecisionPerClass(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores, int classes)
        => PerClass(labels, scores, classes, AveragePrecision);

    /// <summary>ROC AUC of each class, one-vs-rest: labels (N) in [0, K), scores (N, K) row-major.</summary>
    public static double[] RocAucPerClass(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores, int classes)
        => PerClass(labels, scores, classes, RocAuc);

    /// <summary>Unweighted mean of the per-class average precisions (scikit-learn's average="macro").</summary>
    public static double MacroAveragePrecision(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores, int classes)
        => AveragePrecisionPerClass(labels, scores, classes).Average();

    /// <summary>Unweighted mean of the per-class one-vs-rest ROC AUCs (scikit-learn's multi_class="ovr", average="macro").</summary>
    public static double MacroRocAuc(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores, int classes)
        => RocAucPerClass(labels, scores, classes).Average();

    private delegate double BinaryMetric(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores);

    private static double[] PerClass(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores, int classes, BinaryMetric metric)
    {
        if (classes < 2)
        {
            throw new ArgumentException($"classes is {classes}; one-vs-rest metrics need at least 2 classes.");
        }
        if ((long)labels.Length * classes != scores.Length)
        {
            throw new ArgumentException($"scores holds {scores.Length} values but labels ({labels.Length}) x classes ({classes}) = {(long)labels.Length * classes}; pass scores as (N, K) row-major.");
        }
        var result = new double[classes];
        var binary = new int[labels.Length];
        var column = new double[labels.Length];
        for (int c = 0; c < classes; c++)
        {
            for (int i = 0; i < labels.Length; i++)
            {
                if (labels[i] < 0 || labels[i] >= classes)
                {
                    throw new ArgumentException($"label {labels[i]} at {i} is outside [0, {classes}).");
                }
                binary[i] = labels[i] == c ? 1 : 0;
                column[i] = scores[i * classes + c];
            }
            result[c] = metric(binary, column);
        }
        return result;
    }

    // scikit-learn's _binary_clf_curve: scores sorted decreasing, one point at the last index of
    // each run of equal scores; tps = cumulative positives there, fps = 1 + index - tps.
    private static (double[] Fps, double[] Tps, double[] Thresholds) BinaryCurve(ReadOnlySpan<int> labels, ReadOnlySpan<double> scores)
    {
        if (labels.Length != scores.Length)
        {
            throw new ArgumentException($"labels ({labels.Length}) and scores ({scores.Length}) must have the same length.");
        }
        if (labels.Length == 0)
        {
            throw new ArgumentException("labels and scores are empty; ranking metrics need at least one sample.");
        }
        int n = labels.Length;
        var order = new int[n];
        var keys = new double[n];
        for (int i = 0; i < n; i++)
        {
            if (labels[i] is not (0 or 1))
            {
                throw new ArgumentException($"label {labels[i]} at {i} is not 0 or 1; binary metrics take 1 = positive, 0 = negative.");
            }
            if (!double.IsFinite(scores[i]))
            {
                throw new ArgumentException($"score {scores[i]} at {i} is not finite; remove NaN and infinite scores.");
            }
            order[i] = i;
            keys[i] = -scores[i];
        }
        // Only the last index of each tie group is used, so the order inside ties does not matter.
        Array.Sort(keys, order);
        var fps = new List<double>();
        var tps = new List<double>();
        var thresholds = new List<double>();
        double cumulative = 0;
        for (int i = 0; i < n; i++)
        {
            cumulative += labels[order[i]];
            if (i == n - 1 || scores[order[i + 1]] != scores[order[i]])
            {
                tps.Add(cumulative);
                fps.Add(1 + i - cumulative);
                thresholds.Add(scores[order[i]]);
            }
        }
        return (fps.ToArray(), tps.ToArray(), thresholds.ToArray());
    }

    // numpy.trapz(y, x); scikit-learn's auc also accepts a decreasing x, which the ROC never is.
    private static double Trapezoid(double[] x, double[] y)
    {
        double area = 0;
        for (int i = 1; i < x.Length; i++)
        {
            area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0;
        }
        return area;
    }

    private static int[] ToInt(ReadOnlySpan<long> labels)
    {
        var result = new int[labels.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            result[i] = labels[i] is 0 or 1 ? (int)labels[i] : throw new ArgumentException($"label {labels[i]} at {i} is not 0 or 1; binary metrics take 1 = positive, 0 = negative.");
        }
        return result;
    }
}

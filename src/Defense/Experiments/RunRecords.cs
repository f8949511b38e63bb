namespace IlgpuOct.Defense.Experiments;

/// <summary>
/// One detector's per-image view of one attack: normality scores (lower = more suspicious) and
/// decisions at the calibrated threshold, for the clean attacked images and their adversarial versions.
/// </summary>
public sealed record DetectorOutcome(string Detector, double[] CleanScore, double[] AdversarialScore, bool[] CleanRejected, bool[] AdversarialRejected);

/// <summary>
/// Per attacked image outcomes of one attack on one model: what the bootstrap intervals of the
/// claims and the ROC / precision-recall curves are computed from (outcomes.json of a seed).
/// </summary>
public sealed record AttackOutcome(string Mode, string Attack, double Epsilon, double? Lambda, int[] Labels, bool[] CleanCorrect, bool[] AdversarialCorrect,
    IReadOnlyList<DetectorOutcome> Detectors);

/// <summary>
/// The lambda sweep of one adaptive attack: the system-level success (misclassified and accepted by
/// <paramref name="Detector"/>, over attacked images) on held-out test images outside the attacked
/// subset, per lambda; the chosen lambda is the first with the highest success.
/// </summary>
public sealed record LambdaChoice(int Seed, string Mode, string Attack, double Epsilon, string Detector, int HeldOutImages, double[] Lambdas, double[] SystemSuccess, double Chosen);

/// <summary>A seeded 2-D t-SNE of the penultimate features of clean attacked images and their adversarial versions.</summary>
public sealed record FeatureEmbedding(string Mode, string Attack, double Epsilon, double Perplexity, double KlDivergence, float[] X, float[] Y, int[] Label, bool[] Adversarial);

/// <summary>One gallery strip: clean image | adversarial image | perturbation amplified around mid-grey (a PNG in the seed's folder).</summary>
public sealed record GalleryItem(string Mode, string Attack, string Parameter, double Value, int Image, int Label, int PredictedClean, int PredictedAdversarial,
    double Linf, double Amplification, string File);

namespace IlgpuOct.Defense.Risk;

/// <summary>Unit risks of the paper's risk measure (all 1 by default).</summary>
public sealed record UnitRisks(double CleanMisprediction = 1, double CleanRejection = 1, double AdversarialMisprediction = 1);

/// <summary>
/// The counts behind the risk of a classifier f with an optional detector g on N_cln clean and
/// N_adv adversarial images (N = N_cln + N_adv):
/// N_cln_inc = clean images accepted by g and misclassified by f; N_cln_rej = clean images rejected
/// by g (whatever f predicts); N_adv_inc = adversarial images accepted by g and misclassified by f.
/// Without g nothing is rejected. Rejected adversarial images cost nothing (the detector caught them).
/// </summary>
public sealed record RiskCounts(int Clean, int Adversarial, int CleanAcceptedWrong, int CleanRejected, int AdversarialAcceptedWrong)
{
    public int Total => Clean + Adversarial;

    /// <summary>Counts from per-image outcomes; <paramref name="cleanRejected"/>/<paramref name="advRejected"/> null = no detector.</summary>
    public static RiskCounts From(bool[] cleanCorrect, bool[]? cleanRejected, bool[] advCorrect, bool[]? advRejected)
    {
        ArgumentNullException.ThrowIfNull(cleanCorrect);
        ArgumentNullException.ThrowIfNull(advCorrect);
        if (cleanRejected is not null && cleanRejected.Length != cleanCorrect.Length || advRejected is not null && advRejected.Length != advCorrect.Length)
        {
            throw new ArgumentException("Rejection flags must come one per image.");
        }
        int cleanWrong = 0, cleanRej = 0, advWrong = 0;
        for (int i = 0; i < cleanCorrect.Length; i++)
        {
            if (cleanRejected?[i] == true)
            {
                cleanRej++;
            }
            else if (!cleanCorrect[i])
            {
                cleanWrong++;
            }
        }
        for (int i = 0; i < advCorrect.Length; i++)
        {
            if (advRejected?[i] != true && !advCorrect[i])
            {
                advWrong++;
            }
        }
        return new RiskCounts(cleanCorrect.Length, advCorrect.Length, cleanWrong, cleanRej, advWrong);
    }
}

/// <summary>R, and r = R / N, of <see cref="RiskCounts"/>.</summary>
public readonly record struct RiskValue(double Total, double PerImage);

public static class RiskMeasure
{
    /// <summary>
    /// R(f, g) = N_cln_inc r_cln_prd + N_cln_rej r_cln_uad + N_adv_inc r_adv_prd (with a detector) or
    /// R(f) = N_cln_inc r_cln_prd + N_adv_inc r_adv_prd (counts taken without rejection); r = R / N.
    /// </summary>
    public static RiskValue Compute(RiskCounts counts, UnitRisks? unitRisks = null)
    {
        ArgumentNullException.ThrowIfNull(counts);
        var u = unitRisks ?? new UnitRisks();
        double r = counts.CleanAcceptedWrong * u.CleanMisprediction + counts.CleanRejected * u.CleanRejection + counts.AdversarialAcceptedWrong * u.AdversarialMisprediction;
        return new RiskValue(r, counts.Total == 0 ? double.NaN : r / counts.Total);
    }
}

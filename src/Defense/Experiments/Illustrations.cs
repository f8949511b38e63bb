using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Metrics;
using IlgpuOct.Kernels;
using IlgpuOct.Nn.Data;

namespace IlgpuOct.Defense.Experiments;

/// <summary>Figure 1 of the paper as a t-SNE of penultimate features, clean and adversarial.</summary>
public static class FeatureEmbeddings
{
    public const double Perplexity = 30;

    /// <summary>Embeds the clean features (N, D) and the adversarial ones (N, D) together, seeded.</summary>
    public static FeatureEmbedding Embed(string mode, string attack, double epsilon, float[] clean, float[] adversarial, int n, int d, int[] labels, int seed,
        CancellationToken cancellationToken)
    {
        var points = new float[2 * n * d];
        clean.AsSpan(0, n * d).CopyTo(points);
        adversarial.AsSpan(0, n * d).CopyTo(points.AsSpan(n * d));
        var result = Tsne.Embed(points, 2 * n, d, new TsneOptions { Perplexity = Math.Min(Perplexity, (2 * n - 1) / 3.0), Seed = seed }, cancellationToken);
        var x = new float[2 * n];
        var y = new float[2 * n];
        for (int i = 0; i < 2 * n; i++)
        {
            x[i] = (float)result.Y[2 * i];
            y[i] = (float)result.Y[2 * i + 1];
        }
        return new FeatureEmbedding(mode, attack, epsilon, Math.Min(Perplexity, (2 * n - 1) / 3.0), result.KlDivergence, x, y, [.. labels, .. labels],
            [.. Enumerable.Repeat(false, n), .. Enumerable.Repeat(true, n)]);
    }
}

/// <summary>Gallery strips: clean | adversarial | amplified perturbation of one attacked image, as PNG.</summary>
public static class GalleryStrip
{
    /// <summary>Pixels per image pixel in the strip, so a 64x64 image is readable in a page.</summary>
    public const int Zoom = 3;

    private const int Gap = 4;

    /// <summary>
    /// Writes the strip of the first image the attack turned from correct to wrong (else image 0)
    /// under <paramref name="runDirectory"/>/gallery and returns its record (file relative to the run folder).
    /// </summary>
    public static GalleryItem Write(string runDirectory, string mode, string attack, string parameter, double value, float[] clean, AttackResult result, bool[] cleanCorrect)
    {
        int n = result.Count;
        int c = result.Shape[1], h = result.Shape[2], w = result.Shape[3];
        int index = Enumerable.Range(0, n).FirstOrDefault(i => cleanCorrect[i] && result.Success[i]);
        int plane = h * w;
        int offset = index * c * plane; // first channel: the images are grayscale or shown by their first channel
        double linf = 0;
        for (int p = 0; p < plane; p++)
        {
            linf = Math.Max(linf, Math.Abs(result.Adversarial[offset + p] - clean[offset + p]));
        }
        // Map the largest |delta| to +-127 grey levels around 128.
        double amplification = linf > 0 ? 127.0 / linf : 0;
        int stripWidth = 3 * w * Zoom + 2 * Gap;
        int stripHeight = h * Zoom;
        var pixels = new byte[stripWidth * stripHeight];
        Array.Fill(pixels, (byte)255);
        for (int y = 0; y < stripHeight; y++)
        {
            for (int x = 0; x < w * Zoom; x++)
            {
                int p = offset + y / Zoom * w + x / Zoom;
                double delta = result.Adversarial[p] - clean[p];
                pixels[y * stripWidth + x] = ToByte(clean[p] * 255.0);
                pixels[y * stripWidth + w * Zoom + Gap + x] = ToByte(result.Adversarial[p] * 255.0);
                pixels[y * stripWidth + 2 * (w * Zoom + Gap) + x] = ToByte(128 + delta * amplification);
            }
        }
        string name = $"{mode}-{Sanitize(attack)}-{parameter}{value.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)}.png";
        string relative = Path.Combine(Reproduce.GalleryFolder, name);
        Directory.CreateDirectory(Path.Combine(runDirectory, Reproduce.GalleryFolder));
        AtomicFile.WriteAllBytes(Path.Combine(runDirectory, relative), Png.Encode(pixels, stripWidth, stripHeight, 1));
        return new GalleryItem(mode, attack, parameter, value, index, result.Labels[index], result.PredClean[index], result.PredAdv[index], linf, amplification, relative);
    }

    private static byte ToByte(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);

    private static string Sanitize(string attack) => new([.. attack.Select(ch => char.IsLetterOrDigit(ch) || ch == '-' ? ch : '_')]);
}

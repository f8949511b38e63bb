using System.Runtime.Intrinsics;

namespace IlgpuOct.Nn.Data;

/// <summary>
/// Synthetic retinal OCT B-scans in the four Kermany classes (CNV, DME, DRUSEN, NORMAL), the
/// project's default data set. Every image is drawn from its own seed, in normalised coordinates,
/// and rasterised straight at the requested size; pathology size and contrast vary from obvious to
/// nearly invisible and the nuisance variation (tilt, curvature, thickness, shadows, speckle,
/// brightness) is the same for every class, so a classifier cannot learn the task from one cue.
/// </summary>
public static class SyntheticOct
{
    public const int Cnv = 0;
    public const int Dme = 1;
    public const int Drusen = 2;
    public const int Normal = 3;

    /// <summary>Class names in label order (the order of OCTMNIST and the Kermany folders).</summary>
    public static IReadOnlyList<string> ClassNames { get; } = ["CNV", "DME", "DRUSEN", "NORMAL"];

    // Layer boundaries from the top; the level of each layer lies below its boundary.
    private const int Ilm = 0, NumInner = 5, OnlBottom = 6, EzBottom = 7, OsBottom = 8, RpeTop = 9, RpeBottom = 10;
    private const int BoundaryCount = 11;

    [ThreadStatic]
    private static float[]? t_scratch;

    /// <summary>
    /// Renders one grayscale image (H, W) of class <paramref name="label"/> from <paramref name="seed"/>.
    /// <paramref name="minSeverity"/> in [0, 1) is the floor of the pathology's visibility: 0 lets it
    /// fade to nearly invisible in heavy speckle (the hardest set); larger values keep every lesion
    /// visible and scale the speckle down by up to a half.
    /// </summary>
    public static void Render(int label, int seed, int height, int width, Span<byte> destination, float minSeverity = 0f)
    {
        if ((uint)label >= 4)
        {
            throw new ArgumentOutOfRangeException(nameof(label), label, "Label must be 0..3 (CNV, DME, DRUSEN, NORMAL).");
        }
        if (height < 8 || width < 8 || height > 4096 || width > 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(height), $"Image size {height}x{width} is outside 8..4096.");
        }
        if (destination.Length < height * width)
        {
            throw new ArgumentException($"Destination holds {destination.Length} bytes; {height}x{width} needs {height * width}.", nameof(destination));
        }
        if (!(minSeverity >= 0f && minSeverity < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(minSeverity), minSeverity, "The severity floor must lie in [0, 1).");
        }
        var rng = new Random(seed);
        var scene = Scene.Draw(label, rng, minSeverity);
        Rasterise(scene, new PixelNoise(rng), height, width, destination);
    }

    /// <summary>
    /// Generates a whole data set: for each split a balanced label list (shuffled), each image
    /// rendered from a seed derived from (seed, split, index), in parallel; identical bytes for the same inputs.
    /// <paramref name="minSeverity"/>: see <see cref="Render"/>.
    /// </summary>
    public static DatasetContent Generate(
        int height, int width, IReadOnlyList<(string Name, int Count)> splits, int seed,
        IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default, float minSeverity = 0f)
    {
        ArgumentNullException.ThrowIfNull(splits);
        if (splits.Any(s => s.Count < 0))
        {
            throw new ArgumentException("Split sizes must not be negative.", nameof(splits));
        }
        long total = splits.Sum(s => (long)s.Count);
        long done = 0;
        var result = new List<SplitData>();
        int plane = height * width;
        for (int s = 0; s < splits.Count; s++)
        {
            var (name, count) = splits[s];
            if (count == 0)
            {
                continue;
            }
            int[] labels = BalancedSplits.BalancedLabels(count, ClassNames.Count, ImageSeed(seed, name, -1));
            var images = new byte[(long)count * plane];
            const int chunk = 256;
            int chunks = (count + chunk - 1) / chunk;
            Parallel.For(0, chunks, new ParallelOptions { CancellationToken = cancellationToken }, c =>
            {
                int end = Math.Min(count, (c + 1) * chunk);
                for (int i = c * chunk; i < end; i++)
                {
                    Render(labels[i], ImageSeed(seed, name, i), height, width, images.AsSpan(i * plane, plane), minSeverity);
                }
                long now = Interlocked.Add(ref done, end - c * chunk);
                progress?.Report(new DataProgress($"generating {name}", now, total));
            });
            result.Add(new SplitData(name, images, labels));
        }
        string description = $"synthetic-oct v1 seed={seed} size={height}x{width} splits={string.Join(",", splits.Select(s => $"{s.Name}:{s.Count}"))}"
            + (minSeverity > 0 ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $" min-severity={minSeverity}") : "");
        return new DatasetContent(1, height, width, ClassNames, description, result);
    }

    /// <summary>The seed of image <paramref name="index"/> of a split (index -1: the seed of the split's label order).</summary>
    public static int ImageSeed(int seed, string split, int index) =>
        Seeds.Derive(seed, DatasetContent.SplitRank(split) * 131 + StableHash(split), index);

    private static int StableHash(string text)
    {
        int h = 17;
        foreach (char c in text)
        {
            h = unchecked(h * 31 + c);
        }
        return h & 0xFFFF;
    }

    /// <summary>One image's parameters, all in normalised coordinates (x, y in [0, 1], y downwards).</summary>
    private sealed class Scene
    {
        // Geometry of the Bruch membrane (the retina's floor) and the retina above it.
        public float BaseY, Slope, Curvature, WobbleAmp, WobbleFreq, WobblePhase;
        public float Thickness, NasalSlope, FoveaX, PitDepth, PitWidth;
        public float RpeThickness, EzThickness, OsThickness, ChoroidThickness, ChoroidDecay;
        public readonly float[] InnerFractions = new float[NumInner]; // RNFL, GCL, IPL, INL, OPL of the inner retina
        public readonly float[] Levels = new float[BoundaryCount + 1]; // vitreous, then the layer below each boundary
        public float ChoroidLevel, ScleraLevel, ChoroidTexture, SubRpeLevel;

        // Pathology.
        public float ThickenAmount, ThickenX, ThickenWidth; // DME (and a little elsewhere)
        public readonly List<(float X, float Width, float Height, float Power)> SubRpe = []; // CNV dome / drusen
        public float SrfX, SrfWidth, SrfHeight; // subretinal fluid
        public readonly List<Blob> Blobs = []; // cysts (dark), foci and CNV membrane (bright)

        // Nuisance.
        public readonly List<(float X, float Width, float Strength)> Shadows = [];
        public float HyaloidOffset, HyaloidLevel;
        public float Gain, Gamma, Floor, RollOff, LateralAmp, LateralFreq, LateralPhase;
        public float Speckle, Additive, AxialBlur;
        public bool SmoothSpeckle;
        public readonly float[] TextureGrid = new float[TextureCells * TextureCells];

        public const int TextureCells = 10;

        public static Scene Draw(int label, Random r, float minSeverity)
        {
            var s = new Scene();
            s.BaseY = U(r, 0.52f, 0.82f);
            s.Slope = U(r, -0.28f, 0.28f);
            s.Curvature = U(r, -0.6f, 0.25f);
            s.WobbleAmp = U(r, 0f, 0.02f);
            s.WobbleFreq = U(r, 0.5f, 2.5f);
            s.WobblePhase = U(r, 0f, MathF.Tau);
            s.Thickness = U(r, 0.17f, 0.3f);
            s.NasalSlope = U(r, -0.5f, 0.5f);
            s.FoveaX = U(r, 0.3f, 0.7f);
            s.PitDepth = U(r, 0.2f, 0.65f);
            s.PitWidth = U(r, 0.04f, 0.1f);
            s.RpeThickness = U(r, 0.018f, 0.035f);
            s.EzThickness = U(r, 0.006f, 0.013f);
            s.OsThickness = U(r, 0.012f, 0.025f);
            s.ChoroidThickness = U(r, 0.06f, 0.14f);
            s.ChoroidDecay = U(r, 0.04f, 0.1f);
            float[] fractions = [U(r, 0.08f, 0.16f), U(r, 0.1f, 0.16f), U(r, 0.08f, 0.13f), U(r, 0.1f, 0.15f), U(r, 0.06f, 0.1f)];
            fractions.CopyTo(s.InnerFractions, 0);

            float j = 0.06f;
            s.Levels[0] = U(r, 0.01f, 0.06f); // vitreous
            s.Levels[1] = U(r, 0.62f, 0.85f); // RNFL
            s.Levels[2] = U(r, 0.35f, 0.48f); // GCL
            s.Levels[3] = U(r, 0.48f, 0.62f); // IPL
            s.Levels[4] = U(r, 0.18f, 0.3f); // INL
            s.Levels[5] = U(r, 0.45f, 0.6f); // OPL
            s.Levels[6] = U(r, 0.08f, 0.18f); // ONL
            s.Levels[7] = U(r, 0.65f, 0.85f); // ellipsoid zone
            s.Levels[8] = U(r, 0.28f, 0.4f); // outer segments
            s.Levels[9] = U(r, 0.02f, 0.08f); // subretinal fluid
            s.Levels[10] = U(r, 0.85f, 1f); // RPE
            s.SubRpeLevel = U(r, 0.35f, 0.6f); // drusen material; CNV overrides below
            s.ChoroidLevel = U(r, 0.4f, 0.65f);
            s.ScleraLevel = U(r, 0.02f, 0.12f);
            s.ChoroidTexture = U(r, 0.2f, 0.6f);
            for (int i = 1; i < 11; i++)
            {
                s.Levels[i] = Math.Clamp(s.Levels[i] + U(r, -j, j), 0f, 1f);
            }

            // Nuisance shared by all classes.
            int shadows = r.Next(0, 5);
            for (int i = 0; i < shadows; i++)
            {
                s.Shadows.Add((U(r, 0.05f, 0.95f), U(r, 0.004f, 0.025f), U(r, 0.25f, 0.75f)));
            }
            bool hyaloid = r.NextDouble() < 0.3;
            s.HyaloidOffset = hyaloid ? U(r, 0.03f, 0.15f) : -1f;
            s.HyaloidLevel = U(r, 0.1f, 0.3f);
            s.Gain = U(r, 0.65f, 1.25f);
            s.Gamma = U(r, 0.75f, 1.35f);
            s.Floor = U(r, 0f, 0.08f);
            s.RollOff = U(r, 0f, 0.9f);
            s.LateralAmp = U(r, 0f, 0.25f);
            s.LateralFreq = U(r, 0.5f, 2f);
            s.LateralPhase = U(r, 0f, MathF.Tau);
            s.Speckle = U(r, 0.25f, 0.6f);
            s.Additive = U(r, 0.01f, 0.05f);
            s.AxialBlur = U(r, 0.002f, 0.006f);
            s.SmoothSpeckle = r.NextDouble() < 0.5;
            for (int i = 0; i < s.TextureGrid.Length; i++)
            {
                s.TextureGrid[i] = (float)r.NextDouble();
            }
            // A few hyperreflective dots appear in any retina; more in DME.
            int foci = r.NextDouble() < 0.2 ? r.Next(1, 3) : 0;
            for (int i = 0; i < foci; i++)
            {
                s.Blobs.Add(Blob.InRetina(U(r, 0.1f, 0.9f), U(r, 0.2f, 0.7f), U(r, 0.003f, 0.008f), U(r, 0.003f, 0.008f), U(r, 0.6f, 0.9f), U(r, 0.3f, 0.8f)));
            }
            // Mild, class-independent thickness bumps so thickness alone is not DME.
            s.ThickenAmount = U(r, -0.1f, 0.15f);
            s.ThickenX = U(r, 0.2f, 0.8f);
            s.ThickenWidth = U(r, 0.1f, 0.3f);

            // A visibility floor also means a cleaner scan: less speckle (drawn above, so the random stream is unchanged).
            s.Speckle *= 1f - 0.5f * minSeverity;
            switch (label)
            {
                case Cnv:
                    DrawCnv(s, r, minSeverity);
                    break;
                case Dme:
                    DrawDme(s, r, minSeverity);
                    break;
                case Drusen:
                    DrawDrusen(s, r, minSeverity);
                    break;
                default:
                    s.PitDepth = Math.Max(s.PitDepth, U(r, 0.3f, 0.7f));
                    break;
            }
            return s;
        }

        /// <summary>Severity in [floor, 1): a power of a uniform draw, skewed towards small so many cases are subtle, lifted above the floor.</summary>
        private static float Severity(Random r, float exponent, float floor) => floor + (1f - floor) * MathF.Pow((float)r.NextDouble(), exponent);

        private static void DrawCnv(Scene s, Random r, float minSeverity)
        {
            float severity = Severity(r, 1.4f, minSeverity);
            float x = Math.Clamp(s.FoveaX + U(r, -0.2f, 0.2f), 0.1f, 0.9f);
            float width = 0.05f + 0.25f * severity * U(r, 0.6f, 1.2f);
            float height = 0.006f + 0.16f * severity * U(r, 0.5f, 1.1f);
            s.SubRpe.Add((x, width, height, U(r, 0.5f, 1.5f)));
            bool serous = r.NextDouble() < 0.55;
            s.SubRpeLevel = serous ? U(r, 0.03f, 0.2f) : U(r, 0.2f, 0.45f);
            if (r.NextDouble() < 0.65)
            {
                s.SrfX = Math.Clamp(x + U(r, -0.1f, 0.1f), 0.05f, 0.95f);
                s.SrfWidth = width * U(r, 0.8f, 2f);
                s.SrfHeight = (0.004f + 0.09f * severity) * U(r, 0.3f, 1.1f);
            }
            if (r.NextDouble() < 0.45)
            {
                // Type 2 membrane: hyperreflective material over the dome.
                s.Blobs.Add(Blob.AboveRpe(x, width * U(r, 0.2f, 0.5f), U(r, 0.01f, 0.03f) * (0.4f + severity), U(r, 0.55f, 0.8f), U(r, 0.4f, 0.9f)));
            }
            s.PitDepth *= U(r, 0.3f, 1f);
            if (r.NextDouble() < 0.25)
            {
                AddCysts(s, r, r.Next(1, 3), 0.3f * severity + 0.1f);
            }
        }

        private static void DrawDme(Scene s, Random r, float minSeverity)
        {
            float severity = Severity(r, 1.3f, minSeverity);
            s.ThickenAmount = 0.1f + 0.7f * severity * U(r, 0.5f, 1.1f);
            s.ThickenX = Math.Clamp(s.FoveaX + U(r, -0.15f, 0.15f), 0.15f, 0.85f);
            s.ThickenWidth = U(r, 0.12f, 0.3f);
            s.PitDepth *= U(r, 0f, 0.6f);
            int cysts = 1 + (int)(severity * r.Next(1, 9));
            AddCysts(s, r, cysts, severity);
            int foci = r.Next(0, 6);
            for (int i = 0; i < foci; i++)
            {
                s.Blobs.Add(Blob.InRetina(s.ThickenX + U(r, -s.ThickenWidth, s.ThickenWidth), U(r, 0.2f, 0.8f), U(r, 0.003f, 0.01f), U(r, 0.003f, 0.01f), U(r, 0.6f, 0.95f), U(r, 0.4f, 1f)));
            }
            if (r.NextDouble() < 0.2)
            {
                s.SrfX = s.ThickenX;
                s.SrfWidth = U(r, 0.05f, 0.2f);
                s.SrfHeight = U(r, 0.004f, 0.03f);
            }
        }

        private static void AddCysts(Scene s, Random r, int count, float severity)
        {
            for (int i = 0; i < count; i++)
            {
                float x = Math.Clamp(s.ThickenX + U(r, -1f, 1f) * s.ThickenWidth * 0.8f, 0.05f, 0.95f);
                float size = 0.006f + 0.05f * severity * U(r, 0.3f, 1.2f);
                float rx = size * U(r, 0.7f, 1.8f);
                float ry = size * U(r, 0.6f, 1.3f);
                s.Blobs.Add(Blob.InRetina(x, U(r, 0.45f, 0.85f), rx, ry, U(r, 0.02f, 0.12f), U(r, 0.35f, 1f)));
            }
        }

        private static void DrawDrusen(Scene s, Random r, float minSeverity)
        {
            float severity = Severity(r, 1.3f, minSeverity);
            // The floor also lifts the per-druse draws: without it a severe case could still be one tiny druse.
            int count = 1 + (int)(severity * r.Next(1 + (int)(6 * minSeverity), 8));
            for (int i = 0; i < count; i++)
            {
                float x = Math.Clamp(s.FoveaX + U(r, -0.35f, 0.35f), 0.05f, 0.95f);
                float width = U(r, 0.012f, 0.04f) + 0.03f * severity;
                float height = 0.004f + 0.01f * minSeverity + U(r, 0.3f + 0.6f * minSeverity, 1f) * (0.01f + 0.045f * severity);
                s.SubRpe.Add((x, width, height, U(r, 0.6f, 1.4f)));
            }
            if (r.NextDouble() < 0.12)
            {
                // Confluent, drusenoid elevation: looks like a small PED.
                s.SubRpe.Add((Math.Clamp(s.FoveaX + U(r, -0.15f, 0.15f), 0.1f, 0.9f), U(r, 0.06f, 0.14f), U(r, 0.02f, 0.07f), U(r, 0.8f, 1.5f)));
            }
            s.SubRpeLevel = U(r, 0.3f, 0.65f);
        }
    }

    /// <summary>An ellipse in the retina (a cyst when dark, a focus or membrane when bright).</summary>
    private readonly record struct Blob(float X, float DepthFraction, float RadiusX, float RadiusY, float Level, float Strength, bool OnRpe)
    {
        public static Blob InRetina(float x, float depthFraction, float rx, float ry, float level, float strength) =>
            new(x, depthFraction, rx, ry, level, strength, false);

        public static Blob AboveRpe(float x, float rx, float ry, float level, float strength) =>
            new(x, 0, rx, ry, level, strength, true);
    }

    private const int GammaTableSize = 256;
    private const float GammaRange = 1.5f;
    private const float ExpRange = 4f;
    private const int ExpTableSize = 2048;
    private static readonly float[] ExpTable = BuildExpTable();

    private static float[] BuildExpTable()
    {
        var table = new float[ExpTableSize + 2];
        for (int i = 0; i < table.Length; i++)
        {
            table[i] = MathF.Exp(-ExpRange + i * (2 * ExpRange / ExpTableSize));
        }
        return table;
    }

    /// <summary>exp(x) for x in [-4, 4] (clamped) by table and linear interpolation.</summary>
    private static float ExpLookup(float x) =>
        Interpolate(ExpTable, (Math.Clamp(x, -ExpRange, ExpRange) + ExpRange) * (ExpTableSize / (2 * ExpRange)));

    /// <summary>Linear interpolation of a table at a non-negative position (clamped to its end).</summary>
    private static float Interpolate(ReadOnlySpan<float> table, float position)
    {
        position = MathF.Min(position, table.Length - 1.001f);
        int i = (int)position;
        float f = position - i;
        return table[i] + (table[i + 1] - table[i]) * f;
    }

    /// <summary>value[x] = level0 + sum_k steps[k] * ramp((y - bounds[k, x]) / edge), with 256-bit vectors where available.</summary>
    private static void AccumulateSteps(ReadOnlySpan<float> bounds, ReadOnlySpan<float> steps, float level0, float y, float inverseEdge, int width, Span<float> value)
    {
        value[..width].Fill(level0);
        int vectorEnd = Vector256.IsHardwareAccelerated ? width - width % 8 : 0;
        var zero = Vector256<float>.Zero;
        var one = Vector256<float>.One;
        for (int k = 0; k < steps.Length; k++)
        {
            var row = bounds.Slice(k * width, width);
            float step = steps[k];
            float offset = y * inverseEdge + 0.5f;
            var vStep = Vector256.Create(step);
            var vOffset = Vector256.Create(offset);
            var vInv = Vector256.Create(inverseEdge);
            int x = 0;
            for (; x < vectorEnd; x += 8)
            {
                var t = vOffset - Vector256.Create(row.Slice(x, 8)) * vInv;
                t = Vector256.Min(Vector256.Max(t, zero), one);
                (Vector256.Create(value.Slice(x, 8)) + vStep * t).CopyTo(value.Slice(x, 8));
            }
            for (; x < width; x++)
            {
                value[x] += step * Math.Clamp(offset - row[x] * inverseEdge, 0f, 1f);
            }
        }
    }

    private static float U(Random r, float a, float b) => a + (b - a) * (float)r.NextDouble();

    private static float Ramp(float distanceInEdges) => Math.Clamp(distanceInEdges + 0.5f, 0f, 1f);

    private static void Rasterise(Scene s, PixelNoise noise, int height, int width, Span<byte> destination)
    {
        int needed = width * (BoundaryCount + 6) + height + 2;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < needed)
        {
            scratch = t_scratch = new float[Math.Max(needed, 512 * (BoundaryCount + 7) + 2)];
        }
        var bounds = scratch.AsSpan(0, width * BoundaryCount); // (K, W) in pixels
        var bruch = scratch.AsSpan(width * BoundaryCount, width);
        var sclera = scratch.AsSpan(width * (BoundaryCount + 1), width);
        var shadowFactor = scratch.AsSpan(width * (BoundaryCount + 2), width);
        var lateral = scratch.AsSpan(width * (BoundaryCount + 3), width);
        var rowNoise = scratch.AsSpan(width * (BoundaryCount + 4), width);
        var rowValue = scratch.AsSpan(width * (BoundaryCount + 5), width);
        var choroidFade = scratch.AsSpan(width * (BoundaryCount + 6), height + 2); // fade by depth below Bruch, in pixels

        float h = height;
        for (int xi = 0; xi < width; xi++)
        {
            float x = (xi + 0.5f) / width;
            float dx = x - 0.5f;
            float floor = s.BaseY + s.Slope * dx + s.Curvature * dx * dx + s.WobbleAmp * MathF.Sin(MathF.Tau * s.WobbleFreq * x + s.WobblePhase);
            float elevation = 0f;
            foreach (var (bx, bw, bh, power) in s.SubRpe)
            {
                float t = (x - bx) / bw;
                if (t is > -1f and < 1f)
                {
                    elevation = MathF.Max(elevation, bh * MathF.Pow(1f - t * t, power));
                }
            }
            float srf = 0f;
            if (s.SrfHeight > 0f)
            {
                float t = (x - s.SrfX) / s.SrfWidth;
                if (t is > -1f and < 1f)
                {
                    srf = s.SrfHeight * MathF.Pow(1f - t * t, 0.7f);
                }
            }
            float pit = MathF.Exp(-0.5f * (x - s.FoveaX) * (x - s.FoveaX) / (s.PitWidth * s.PitWidth));
            float thicken = s.ThickenAmount * MathF.Exp(-0.5f * (x - s.ThickenX) * (x - s.ThickenX) / (s.ThickenWidth * s.ThickenWidth));
            float rpeBottom = floor - elevation;
            float rpeTop = rpeBottom - s.RpeThickness * (1f - 0.3f * MathF.Min(1f, elevation * 20f));
            float osBottom = rpeTop - srf;
            float ezBottom = osBottom - s.OsThickness;
            float onlBottom = ezBottom - s.EzThickness;
            float inner = s.Thickness * (1f + s.NasalSlope * dx * 0.5f) * (1f - s.PitDepth * pit) * (1f + thicken);
            float ilm = onlBottom - inner;
            bounds[Ilm * width + xi] = ilm * h;
            float y = ilm;
            float taper = 1f - 0.92f * pit;
            float nasal = 1f + s.NasalSlope * dx;
            for (int k = 0; k < NumInner; k++)
            {
                float fraction = s.InnerFractions[k] * taper * (k == 0 ? nasal : 1f) * (1f - 0.3f * thicken / (1f + thicken));
                y += fraction * s.Thickness;
                bounds[(1 + k) * width + xi] = MathF.Min(y, onlBottom) * h;
            }
            bounds[OnlBottom * width + xi] = onlBottom * h;
            bounds[EzBottom * width + xi] = ezBottom * h;
            bounds[OsBottom * width + xi] = osBottom * h;
            bounds[RpeTop * width + xi] = rpeTop * h;
            bounds[RpeBottom * width + xi] = rpeBottom * h;
            bruch[xi] = floor * h;
            sclera[xi] = (floor + s.ChoroidThickness) * h;
            float shade = 1f;
            foreach (var (sx, sw, strength) in s.Shadows)
            {
                float t = (x - sx) / sw;
                shade *= 1f - strength * MathF.Exp(-t * t);
            }
            shadowFactor[xi] = shade;
            lateral[xi] = 1f + s.LateralAmp * MathF.Sin(MathF.Tau * s.LateralFreq * x + s.LateralPhase);
        }

        // Level steps at each boundary; the sub-RPE layer takes the scene's fill level.
        Span<float> steps = stackalloc float[BoundaryCount];
        Span<float> levels = stackalloc float[BoundaryCount + 1];
        s.Levels.CopyTo(levels);
        levels[RpeBottom + 1] = s.SubRpeLevel;
        for (int k = 0; k < BoundaryCount; k++)
        {
            steps[k] = levels[k + 1] - levels[k];
        }
        float subRpe = levels[BoundaryCount];
        for (int d = 0; d < choroidFade.Length; d++)
        {
            choroidFade[d] = MathF.Exp(-d / (h * s.ChoroidDecay));
        }
        float edge = MathF.Max(0.7f, s.AxialBlur * h);
        float inverseEdge = 1f / edge;
        float invW = 1f / width;
        int cells = Scene.TextureCells;

        // Blob centres in pixels, from the column they sit on.
        Span<(float Cx, float Cy, float Rx, float Ry, float Level, float Strength)> blobs = stackalloc (float, float, float, float, float, float)[s.Blobs.Count];
        for (int b = 0; b < s.Blobs.Count; b++)
        {
            var blob = s.Blobs[b];
            int column = Math.Clamp((int)(blob.X * width), 0, width - 1);
            float cy = blob.OnRpe
                ? bounds[RpeTop * width + column] - blob.RadiusY * h
                : bounds[Ilm * width + column] + blob.DepthFraction * (bounds[OnlBottom * width + column] - bounds[Ilm * width + column]);
            blobs[b] = (blob.X * width, cy, MathF.Max(blob.RadiusX * width, 0.35f), MathF.Max(blob.RadiusY * h, 0.35f), blob.Level, blob.Strength);
        }

        // Per-image lookup tables: gamma curve and log-normal speckle.
        Span<float> gammaTable = stackalloc float[GammaTableSize + 2];
        for (int i = 0; i < gammaTable.Length; i++)
        {
            gammaTable[i] = MathF.Pow(i * (GammaRange / GammaTableSize), s.Gamma);
        }
        float speckleNorm = MathF.Exp(-0.5f * s.Speckle * s.Speckle);
        float blobReach = 1.27f;
        var value = rowValue;
        for (int yi = 0; yi < height; yi++)
        {
            float yc = yi + 0.5f;
            float yNorm = yc / h;
            float rowGain = s.Gain * MathF.Exp(-s.RollOff * yNorm);

            // Layers: the vitreous level plus one soft step per boundary (vectorised).
            AccumulateSteps(bounds, steps, levels[0], yc, inverseEdge, width, value);

            if (s.HyaloidOffset > 0f)
            {
                float offset = s.HyaloidOffset * h;
                for (int xi = 0; xi < width; xi++)
                {
                    float d = (yc - (bounds[Ilm * width + xi] - offset)) * inverseEdge;
                    value[xi] += s.HyaloidLevel * MathF.Max(0f, 1f - d * d);
                }
            }

            // Cysts, foci and membranes: only the rows and columns they cover.
            for (int b = 0; b < blobs.Length; b++)
            {
                var (cx, cy, rx, ry, level, strength) = blobs[b];
                float ey = (yc - cy) / ry;
                if (ey * ey >= blobReach)
                {
                    continue;
                }
                int x0 = Math.Max(0, (int)(cx - rx * 1.13f)), x1 = Math.Min(width - 1, (int)(cx + rx * 1.13f) + 1);
                float sharp = MathF.Min(rx, ry) * 1.5f;
                for (int xi = x0; xi <= x1; xi++)
                {
                    float ex = (xi + 0.5f - cx) / rx;
                    float d2 = ex * ex + ey * ey;
                    if (d2 < blobReach)
                    {
                        float inside = Math.Clamp((1f - MathF.Sqrt(d2)) * sharp + 0.5f, 0f, 1f) * strength;
                        value[xi] += (level - value[xi]) * inside;
                    }
                }
            }

            // Choroid below Bruch's membrane, with vessel texture, fading into the sclera.
            float ty = Math.Clamp(yNorm, 0f, 1f) * (cells - 1);
            int iy = Math.Min((int)ty, cells - 2);
            float fy = ty - iy;
            var g = s.TextureGrid;
            for (int xi = 0; xi < width; xi++)
            {
                float below = Ramp((yc - bruch[xi]) * inverseEdge);
                if (below <= 0f)
                {
                    continue;
                }
                float tx = xi * invW * (cells - 1);
                int ix = Math.Min((int)tx, cells - 2);
                float fx = tx - ix;
                float texture = (g[iy * cells + ix] * (1 - fx) + g[iy * cells + ix + 1] * fx) * (1 - fy)
                    + (g[(iy + 1) * cells + ix] * (1 - fx) + g[(iy + 1) * cells + ix + 1] * fx) * fy;
                float depth = MathF.Max(0f, yc - bruch[xi]);
                float fade = Interpolate(choroidFade, depth);
                float choroid = s.ChoroidLevel * (1f - s.ChoroidTexture * (1f - texture)) * fade;
                float toSclera = Ramp((yc - sclera[xi]) * inverseEdge * 0.25f);
                choroid += (s.ScleraLevel * fade - choroid) * toSclera;
                value[xi] += (choroid - subRpe) * below;
            }

            // Speckle: one Gaussian per pixel (table lookup), optionally correlated along the row.
            for (int xi = 0; xi < width; xi++)
            {
                rowNoise[xi] = noise.NextGaussian();
            }
            if (s.SmoothSpeckle)
            {
                float previous = rowNoise[0];
                for (int xi = 0; xi < width; xi++)
                {
                    float current = rowNoise[xi];
                    float right = rowNoise[Math.Min(xi + 1, width - 1)];
                    rowNoise[xi] = (previous + 2f * current + right) * (0.25f * 1.63f);
                    previous = current;
                }
            }

            int row = yi * width;
            for (int xi = 0; xi < width; xi++)
            {
                // Vessel shadows darken everything under the nerve fibre layer.
                float shadowed = Ramp((yc - bounds[Ilm * width + xi]) * inverseEdge - 2f);
                float v = value[xi] * (1f + (shadowFactor[xi] - 1f) * shadowed);
                v = s.Floor + rowGain * lateral[xi] * Interpolate(gammaTable, Math.Clamp(v, 0f, GammaRange) * (GammaTableSize / GammaRange));
                v = v * ExpLookup(s.Speckle * rowNoise[xi]) * speckleNorm + s.Additive * (noise.NextFloat() - 0.5f) * 3.4f;
                destination[row + xi] = (byte)Math.Clamp(v * 255f + 0.5f, 0f, 255f);
            }
        }
    }
}

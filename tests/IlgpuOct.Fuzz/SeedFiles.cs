using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Detection;
using IlgpuOct.Defense.Density;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;

namespace IlgpuOct.Fuzz;

/// <summary>Valid, small files of every format: the starting points the mutators change.</summary>
public sealed class SeedFiles
{
    public const int Width = 2; // ResNet-18 width of the seed checkpoint: 16 features
    public const int Classes = 4;
    public const int Side = 16;

    private SeedFiles(string folder)
    {
        Folder = folder;
    }

    public string Folder { get; }

    public required byte[] Checkpoint { get; init; }

    public required byte[] Uad { get; init; }

    public required byte[] Mahalanobis { get; init; }

    public required byte[] Kde { get; init; }

    public required byte[] Mixture { get; init; }

    public required byte[] Adversarial { get; init; }

    public required byte[] Dataset { get; init; }

    public required IReadOnlyList<NpyEntry> Npz { get; init; }

    public required IReadOnlyList<byte[]> Jpegs { get; init; }

    /// <summary>The seed files also on disk (for CLI runs that need a valid partner file).</summary>
    public string CheckpointPath => Path.Combine(Folder, "seed.safetensors");

    public string DatasetPath => Path.Combine(Folder, "seed.dat");

    public string DetectorPath => Path.Combine(Folder, "seed-uad.safetensors");

    public static SeedFiles Create(Accelerator accelerator, string folder)
    {
        Directory.CreateDirectory(folder);
        var random = new Random(12345);
        using var model = new ResNet18(accelerator, new ResNetConfig(Width, 1, Classes), seed: 1);
        byte[] checkpoint = Bytes(s => Nn.Checkpoints.Checkpoint.ToFile(model, 1, 10, "abc").WriteTo(s));

        int d = 8 * Width, n = 80;
        var features = new float[n * d];
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % Classes;
            for (int j = 0; j < d; j++)
            {
                features[i * d + j] = (float)(random.NextDouble() + labels[i]);
            }
        }
        using var cpu = new HostAccelerator(AcceleratorKind.Cpu);
        byte[] Detector(FeatureDetector detector)
        {
            detector.Fit(features, n, d, labels, Classes, cpu);
            detector.Calibrate(detector.Score(features, n, labels), 0.05);
            string path = Path.Combine(folder, $"seed-{detector.Name}.safetensors");
            detector.Save(path);
            return File.ReadAllBytes(path);
        }
        var gmm = new GaussianMixture(new GaussianMixtureOptions { Components = 2, CovarianceType = CovarianceType.Full, Seed = 1 }).Fit(features, n, d);
        string gmmPath = Path.Combine(folder, "seed-gmm.safetensors");
        gmm.Save(gmmPath);

        var adversarial = new SafeTensorFile(new Dictionary<string, string> { ["format"] = "ilgpuoct.adversarial.v1" });
        var images = new float[3 * Side * Side];
        for (int i = 0; i < images.Length; i++)
        {
            images[i] = (float)random.NextDouble();
        }
        adversarial.Add("adv", images, 3, 1, Side, Side);
        adversarial.Add("labels", new long[] { 0, 1, 3 }, 3);

        var content = SyntheticOct.Generate(Side, Side, [("train", 8), ("unlabeled", 4), ("val", 4), ("test", 8)], 3);
        string dataPath = Path.Combine(folder, "seed.dat");
        DatasetFile.Write(dataPath, content);
        File.WriteAllBytes(Path.Combine(folder, "seed.safetensors"), checkpoint);

        var jpegs = new List<byte[]>();
        if (TurboJpeg.IsAvailable)
        {
            for (int k = 0; k < 4; k++)
            {
                var pixels = new byte[24 * 20];
                random.NextBytes(pixels);
                jpegs.Add(TurboJpeg.EncodeGray(pixels, 24, 20, 90));
            }
        }
        return new SeedFiles(folder)
        {
            Checkpoint = checkpoint,
            Uad = Detector(new UadDetector(new UadOptions { Components = 1 })),
            Mahalanobis = Detector(new MahalanobisDetector()),
            Kde = Detector(new KdeDetector()),
            Mixture = File.ReadAllBytes(gmmPath),
            Adversarial = Bytes(adversarial.WriteTo),
            Dataset = File.ReadAllBytes(dataPath),
            Npz = NpzMutator.SeedEntries(6, 12, random),
            Jpegs = jpegs,
        };
    }

    private static byte[] Bytes(Action<Stream> write)
    {
        using var ms = new MemoryStream();
        write(ms);
        return ms.ToArray();
    }
}

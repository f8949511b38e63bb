using System.Buffers.Binary;
using System.Text;
using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Defense.Detection;
using IlgpuOct.Defense.Density;
using IlgpuOct.Fuzz;
using IlgpuOct.Kernels;
using IlgpuOct.Nn;
using IlgpuOct.Nn.Checkpoints;
using IlgpuOct.Nn.Data;
using IlgpuOct.Nn.IO;
using Xunit;

namespace IlgpuOct.Tests.Robustness;

/// <summary>
/// Every crash an outside tester (issue 12) or the fuzzer found, as a hand-made input: each must now
/// be refused with <see cref="InvalidFileFormatException"/> naming the file and the field.
/// </summary>
public sealed class KnownCrashTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ilgpuoct-crashes-" + Guid.NewGuid().ToString("N"));

    public KnownCrashTests() => Directory.CreateDirectory(_root);

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private string Write(string name, string headerJson, byte[]? data = null)
    {
        byte[] json = Encoding.UTF8.GetBytes(headerJson);
        data ??= new byte[16];
        var bytes = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + json.Length);
        string path = Path.Combine(_root, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void Refused(Action read, params string[] mentions)
    {
        var error = read.Should().Throw<InvalidFileFormatException>().Which;
        error.Message.Should().NotContain("\n");
        foreach (string text in mentions)
        {
            error.Message.Should().Contain(text);
        }
    }

    [Theory]
    [InlineData("""{"t":{"dtype":"F32","data_offsets":[0,16]}}""", "shape")]
    [InlineData("""{"t":{"dtype":"F32","shape":[4]}}""", "data_offsets")]
    [InlineData("""{"t":{"shape":[4],"data_offsets":[0,16]}}""", "dtype")]
    [InlineData("""{"t":{"dtype":"F32","shape":[4294967296],"data_offsets":[0,16]}}""", "shape")]
    [InlineData("""{"t":{"dtype":"F32","shape":[65536,65536,65536],"data_offsets":[0,16]}}""", "shape")]
    [InlineData("""{"t":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}""", "data_offsets")]
    [InlineData("""{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,9223372036854775807]}}""", "data_offsets")]
    [InlineData("""{"__metadata__":{"width":7},"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", "__metadata__")]
    [InlineData("""{"__metadata__":"x"}""", "__metadata__")]
    [InlineData("""[1,2]""", "header")]
    [InlineData("""{"t":5}""", "tensor 't'")]
    public void Safetensors_headers_without_fields_or_with_impossible_values_are_refused(string header, string field)
    {
        string path = Write("bad.safetensors", header);
        Refused(() => SafeTensorFile.Read(path), "bad.safetensors", field);
    }

    [Fact]
    public void Invalid_utf8_in_a_header_name_is_refused()
    {
        // Found by the fuzzer: System.Text.Json checks UTF-8 only when a name is read.
        byte[] json = [.. Encoding.UTF8.GetBytes("{\"a"), 0xC3, 0x28, .. Encoding.UTF8.GetBytes("\":{}}")];
        var bytes = new byte[8 + json.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        string path = Path.Combine(_root, "utf8.safetensors");
        File.WriteAllBytes(path, bytes);
        Refused(() => SafeTensorFile.Read(path), "UTF-8");
    }

    [Theory]
    [InlineData("width", "99999999999999999999")]
    [InlineData("width", "-3")]
    [InlineData("num_classes", "1")]
    [InlineData("in_channels", "2")]
    [InlineData("step", "99999999999999999999")]
    public void Checkpoint_metadata_out_of_range_is_refused(string key, string value)
    {
        string path = Write("ckpt.safetensors", $$$"""{"__metadata__":{"width":"8","in_channels":"1","num_classes":"4","{{{key}}}":"{{{value}}}"}}""");
        using var accelerator = DeviceSelection.Open("cpu", out _);
        Refused(() => Checkpoint.Open(accelerator, path), "ckpt.safetensors", key);
    }

    [Fact]
    public void Checkpoint_metadata_that_disagrees_with_its_tensors_is_refused_before_the_model_is_allocated()
    {
        string path = Write("wide.safetensors", """{"__metadata__":{"width":"4096","in_channels":"1","num_classes":"4"},"conv1.weight":{"dtype":"F32","shape":[2,1,2,1],"data_offsets":[0,16]}}""");
        using var accelerator = DeviceSelection.Open("cpu", out _);
        Refused(() => Checkpoint.Open(accelerator, path), "conv1.weight", "[4096, 1, 7, 7]");
    }

    [Theory]
    [InlineData("classes", "-1")]
    [InlineData("classes", null)]
    [InlineData("threshold", "nan")]
    [InlineData("features", "99999999999")]
    [InlineData("clean_rejection_rate", "2")]
    [InlineData("relative_regularization", null)]
    public void Detector_metadata_missing_or_out_of_range_is_refused(string key, string? value)
    {
        var meta = new Dictionary<string, string?>
        {
            ["format"] = FeatureDetector.Format, ["detector"] = "mahalanobis", ["classes"] = "2", ["features"] = "2",
            ["threshold"] = "-1", ["clean_rejection_rate"] = "0.05", ["relative_regularization"] = "0.001",
        };
        meta[key] = value;
        string metadata = string.Join(",", meta.Where(kv => kv.Value is not null).Select(kv => $"\"{kv.Key}\":\"{kv.Value}\""));
        string path = Write("det.safetensors", "{\"__metadata__\":{" + metadata + "}}");
        Refused(() => FeatureDetector.Load(path), "det.safetensors", key);
    }

    [Fact]
    public void Detector_without_its_tensors_is_refused()
    {
        string path = Write("det.safetensors", $$$"""{"__metadata__":{"format":"{{{FeatureDetector.Format}}}","detector":"mahalanobis","classes":"2","features":"2","threshold":"-1","clean_rejection_rate":"0.05","relative_regularization":"0.001"}}""");
        Refused(() => FeatureDetector.Load(path), "means", "missing");
    }

    [Fact]
    public void Mixture_with_a_huge_component_count_is_refused()
    {
        string path = Write("gmm.safetensors", """{"__metadata__":{"format":"ilgpuoct.gaussian_mixture.v1","covariance_type":"Full","components":"99999999999","features":"2","reg_covar":"0","tol":"0","max_iter":"1","n_init":"1","seed":"0","n_iter":"1","converged":"true","lower_bound":"0"}}""");
        Refused(() => GaussianMixture.Load(path), "gmm.safetensors", "components");
    }

    [Theory]
    [InlineData("""{"adv":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}""", 4, "adv")]
    [InlineData("""{"adv":{"dtype":"F32","shape":[1,1,8,8],"data_offsets":[0,256]},"labels":{"dtype":"I64","shape":[0],"data_offsets":[256,256]}}""", 256, "labels")]
    [InlineData("""{"adv":{"dtype":"F32","shape":[1,1,8,8],"data_offsets":[0,256]},"labels":{"dtype":"I64","shape":[1],"data_offsets":[256,264]}}""", 264, "labels")]
    [InlineData("""{"adv":{"dtype":"F32","shape":[1,3,8,8],"data_offsets":[0,768]}}""", 768, "adv")]
    public void Adversarial_files_with_bad_shapes_or_labels_are_refused(string header, int dataBytes, string field)
    {
        var data = new byte[dataBytes];
        if (dataBytes == 264)
        {
            BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(256), 1L << 31); // a label >= 2^31
        }
        string path = Write("adv.safetensors", header, data);
        Refused(() => AdversarialFile.Read(path, channels: 1, classes: 4), "adv.safetensors", field);
    }

    [Fact]
    public void Data_set_header_whose_size_wraps_is_refused()
    {
        // height x width x count chosen so that the payload size overflows 64 bits; the header CRC is kept valid.
        string path = Path.Combine(_root, "wrap.dat");
        DatasetFile.Write(path, SyntheticOct.Generate(8, 8, [("train", 4)], 1));
        byte[] bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(28), 32768);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(32), 32768);
        int crcAt = CrcOffset(bytes);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(crcAt), Crc32.Compute(bytes.AsSpan(0, crcAt)));
        File.WriteAllBytes(path, bytes);
        Refused(() => DatasetFile.Open(path), "wrap.dat");
    }

    [Fact]
    public void A_zip_whose_central_directory_is_damaged_is_refused()
    {
        // Found by the fuzzer: ZipArchive reads its central directory lazily, on the first GetEntry.
        var entries = NpzMutator.SeedEntries(2, 8, new Random(1));
        byte[] zip = NpzMutator.Build(entries);
        int eocd = zip.Length - 22;
        BinaryPrimitives.WriteUInt16LittleEndian(zip.AsSpan(eocd + 10), 99); // total entries in the central directory
        string path = Path.Combine(_root, "cd.npz");
        File.WriteAllBytes(path, zip);
        Refused(() => NpzImport.Import(path, new NpzImportOptions(new Preprocess(16))), "cd.npz");
    }

    [Fact]
    public void Fifo_and_device_paths_are_refused_without_being_opened()
    {
        Refused(() => SafeTensorFile.Read("/dev/zero"), "/dev/zero", "not a regular file");
        Refused(() => DatasetFile.Open("/dev/null"), "/dev/null");
        Refused(() => SafeTensorFile.Read(_root), "folder");
    }

    private static int CrcOffset(byte[] b)
    {
        int p = 84;
        int classes = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(80));
        for (int i = 0; i < classes; i++)
        {
            p += 2 + BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(p));
        }
        int splits = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(p));
        p += 4;
        for (int s = 0; s < splits; s++)
        {
            p += 2 + BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(p)) + 8;
        }
        return p + 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(p));
    }
}

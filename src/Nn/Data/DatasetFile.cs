using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;
using IlgpuOct.Kernels;

namespace IlgpuOct.Nn.Data;

/// <summary>
/// The project's data set file: a small header, then uint8 pixels and labels split by split,
/// memory-mapped for reading so that a batch touches only its own pages.
/// </summary>
/// <remarks>
/// Layout (little-endian). Header: magic "IOCTDATA" (8), version u32, header length u32 (payload
/// offset, a multiple of 4096), payload length i64, channels i32, height i32, width i32, label bytes
/// u8 (1 = uint8, 4 = int32) + 3 zero bytes, image count i64, SHA-256 of the payload (32), class
/// count i32 and names (u16 length + UTF-8 each), split count i32 and for each split its name
/// (u16 length + UTF-8) and count i64, source (u32 length + UTF-8), CRC-32 of all header bytes
/// before it, zero padding. Payload: for each split in header order, pixels (N, C, H, W) then
/// labels (N), each section starting at a multiple of 64 bytes from the payload start (zero padding).
/// </remarks>
public sealed unsafe class DatasetFile : IDisposable
{
    public const string Magic = "IOCTDATA";
    public const int CurrentVersion = 1;
    private const int HeaderAlignment = 4096;
    private const int SectionAlignment = 64;
    private const int FixedHeaderBytes = 80;

    /// <summary>What readers call the file in their errors.</summary>
    public const string FormatName = "data set file";

    /// <summary>Largest image side a data set file may declare.</summary>
    public const int MaxSide = 1 << 15;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;
    private readonly long _payloadOffset;
    private readonly long _payloadLength;
    private readonly DatasetSplit[] _splits;

    private DatasetFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer, HeaderInfo header)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePointer;
        _payloadOffset = header.HeaderLength;
        _payloadLength = header.PayloadLength;
        Version = header.Version;
        Channels = header.Channels;
        Height = header.Height;
        Width = header.Width;
        LabelBytes = header.LabelBytes;
        ClassNames = header.ClassNames;
        Source = header.Source;
        Checksum = Convert.ToHexStringLower(header.Checksum);
        _splits = new DatasetSplit[header.SplitNames.Length];
        long offset = 0;
        for (int s = 0; s < _splits.Length; s++)
        {
            long count = header.SplitCounts[s];
            long pixelOffset = offset;
            offset = Align(offset + count * ImageBytes, SectionAlignment);
            long labelOffset = offset;
            offset = Align(offset + count * LabelBytes, SectionAlignment);
            _splits[s] = new DatasetSplit(this, header.SplitNames[s], (int)count, _payloadOffset + pixelOffset, _payloadOffset + labelOffset);
        }
    }

    public string Path { get; }

    public int Version { get; }

    public int Channels { get; }

    public int Height { get; }

    public int Width { get; }

    /// <summary>1 when labels are stored as uint8, 4 when as int32.</summary>
    public int LabelBytes { get; }

    public IReadOnlyList<string> ClassNames { get; }

    public int ClassCount => ClassNames.Count;

    public string Source { get; }

    /// <summary>SHA-256 of the payload as stored in the header (lower-case hex).</summary>
    public string Checksum { get; }

    public long ImageBytes => (long)Channels * Height * Width;

    public long ImageCount => _splits.Sum(s => (long)s.Count);

    public IReadOnlyList<DatasetSplit> Splits => _splits;

    internal byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return _base;
        }
    }

    public bool HasSplit(string name) => _splits.Any(s => s.Name == name);

    /// <summary>The split of that name; a clear error listing the present splits otherwise.</summary>
    public DatasetSplit Split(string name) =>
        _splits.FirstOrDefault(s => s.Name == name)
        ?? throw new ArgumentException($"Data set '{Path}' has no split '{name}'; it has: {string.Join(", ", _splits.Select(s => s.Name))}.");

    /// <summary>
    /// Opens and validates a data set file (magic, version, header CRC, sizes, labels); with
    /// <paramref name="verifyChecksum"/> also recomputes the payload SHA-256 (reads the whole file).
    /// </summary>
    public static DatasetFile Open(string path, bool verifyChecksum = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"Data set file '{path}' does not exist (make one with `ilgpuoct data generate` or `ilgpuoct data import`).", path);
        }
        long fileLength = InputFile.Check(path, FormatName);
        if (fileLength < FixedHeaderBytes)
        {
            throw Corrupt(path, $"it is only {fileLength} bytes, shorter than the {FixedHeaderBytes}-byte fixed header (truncated or not a data set)");
        }
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        bool acquired = false;
        DatasetFile? file = null;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            acquired = true;
            pointer += view.PointerOffset;
            var header = ParseHeader(path, new ReadOnlySpan<byte>(pointer, (int)Math.Min(fileLength, int.MaxValue)), fileLength);
            file = new DatasetFile(path, map, view, pointer, header);
            file.ValidateLabels();
            if (verifyChecksum)
            {
                file.VerifyChecksum();
            }
            return file;
        }
        catch
        {
            if (file is not null)
            {
                file.Dispose();
            }
            else if (view is not null)
            {
                if (acquired)
                {
                    view.SafeMemoryMappedViewHandle.ReleasePointer();
                }
                view.Dispose();
                map.Dispose();
            }
            else
            {
                map.Dispose();
            }
            throw;
        }
    }

    /// <summary>Recomputes the payload SHA-256 (streamed); throws <see cref="InvalidFileFormatException"/> naming the file when it differs.</summary>
    public void VerifyChecksum()
    {
        string actual = Convert.ToHexStringLower(ComputePayloadHash());
        if (actual != Checksum)
        {
            throw Corrupt(Path, $"the payload checksum does not match (header says sha256 {Checksum}, the data hashes to {actual}): the pixels or labels were modified or damaged (--no-verify skips this check)");
        }
    }

    private byte[] ComputePayloadHash()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte* start = Pointer + _payloadOffset;
        const int chunk = 1 << 24;
        for (long done = 0; done < _payloadLength; done += chunk)
        {
            int n = (int)Math.Min(chunk, _payloadLength - done);
            hash.AppendData(new ReadOnlySpan<byte>(start + done, n));
        }
        return hash.GetHashAndReset();
    }

    private void ValidateLabels()
    {
        foreach (var split in _splits)
        {
            for (int i = 0; i < split.Count; i++)
            {
                int label = split.Label(i);
                if (label < 0 || label >= ClassCount)
                {
                    throw Corrupt(Path, $"split '{split.Name}' label {label} at index {i} is outside 0..{ClassCount - 1} (the file is damaged)");
                }
            }
        }
    }

    public void Dispose()
    {
        if (_base != null)
        {
            _base = null;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map.Dispose();
        }
    }

    /// <summary>Writes a data set atomically (temporary file, then rename) with uint8 labels when they fit, else int32.</summary>
    public static void Write(string path, DatasetContent content)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(content);
        int labelBytes = content.ClassNames.Count <= 256 ? 1 : 4;
        var sections = new List<byte[]>();
        foreach (var split in content.Splits)
        {
            sections.Add(split.Images);
            var labels = new byte[split.Count * labelBytes];
            for (int i = 0; i < split.Count; i++)
            {
                if (labelBytes == 1)
                {
                    labels[i] = (byte)split.Labels[i];
                }
                else
                {
                    BinaryPrimitives.WriteInt32LittleEndian(labels.AsSpan(i * 4), split.Labels[i]);
                }
            }
            sections.Add(labels);
        }
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var padding = new byte[SectionAlignment];
        long payloadLength = 0;
        foreach (var section in sections)
        {
            hash.AppendData(section);
            int pad = (int)(Align(section.LongLength, SectionAlignment) - section.LongLength);
            hash.AppendData(padding, 0, pad);
            payloadLength += section.LongLength + pad;
        }
        byte[] checksum = hash.GetHashAndReset();
        byte[] header = BuildHeader(content, labelBytes, payloadLength, checksum);
        AtomicFile.Write(path, stream =>
        {
            stream.Write(header);
            foreach (var section in sections)
            {
                stream.Write(section);
                stream.Write(padding, 0, (int)(Align(section.LongLength, SectionAlignment) - section.LongLength));
            }
        });
    }

    private static byte[] BuildHeader(DatasetContent content, int labelBytes, long payloadLength, byte[] checksum)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Encoding.ASCII.GetBytes(Magic));
            w.Write((uint)CurrentVersion);
            w.Write(0u); // header length, patched below
            w.Write(payloadLength);
            w.Write(content.Channels);
            w.Write(content.Height);
            w.Write(content.Width);
            w.Write((byte)labelBytes);
            w.Write(new byte[3]);
            w.Write(content.ImageCount);
            w.Write(checksum);
            w.Write(content.ClassNames.Count);
            foreach (var name in content.ClassNames)
            {
                WriteShortString(w, name);
            }
            w.Write(content.Splits.Count);
            foreach (var split in content.Splits)
            {
                WriteShortString(w, split.Name);
                w.Write((long)split.Count);
            }
            byte[] source = Encoding.UTF8.GetBytes(content.Source);
            w.Write((uint)source.Length);
            w.Write(source);
        }
        long used = ms.Length + 4;
        long headerLength = Align(used, HeaderAlignment);
        byte[] bytes = new byte[headerLength];
        ms.ToArray().CopyTo(bytes, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12), (uint)headerLength);
        uint crc = Crc32.Compute(bytes.AsSpan(0, (int)ms.Length));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)ms.Length), crc);
        return bytes;
    }

    private static void WriteShortString(BinaryWriter w, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length > ushort.MaxValue)
        {
            throw new ArgumentException($"Name '{text[..40]}...' is too long for the data set header.");
        }
        w.Write((ushort)bytes.Length);
        w.Write(bytes);
    }

    private sealed record HeaderInfo(
        int Version, int HeaderLength, long PayloadLength, int Channels, int Height, int Width, int LabelBytes,
        byte[] Checksum, string[] ClassNames, string[] SplitNames, long[] SplitCounts, string Source);

    private static HeaderInfo ParseHeader(string path, ReadOnlySpan<byte> data, long fileLength)
    {
        string magic = Encoding.ASCII.GetString(data[..8]);
        if (magic != Magic)
        {
            string shown = new(magic.Select(c => c is >= ' ' and < (char)127 ? c : '?').ToArray());
            throw Corrupt(path, $"it does not start with the magic \"{Magic}\" (found \"{shown}\"): it is not an IlgpuOct data set file");
        }
        int version = (int)BinaryPrimitives.ReadUInt32LittleEndian(data[8..]);
        if (version != CurrentVersion)
        {
            throw Corrupt(path, $"its format version is {version}; this build reads version {CurrentVersion} (regenerate or re-import the data set)");
        }
        long headerLength = BinaryPrimitives.ReadUInt32LittleEndian(data[12..]);
        if (headerLength < FixedHeaderBytes + 4 || headerLength % HeaderAlignment != 0)
        {
            throw Corrupt(path, $"its header length {headerLength} is invalid (the header is damaged)");
        }
        if (headerLength > fileLength)
        {
            throw Corrupt(path, $"it is truncated: {fileLength} bytes, shorter than its own {headerLength}-byte header");
        }
        var header = data[..(int)headerLength];
        var reader = new HeaderReader(path, header);
        reader.Skip(16);
        long payloadLength = reader.Int64();
        int channels = reader.Int32();
        int height = reader.Int32();
        int width = reader.Int32();
        int labelBytes = reader.Byte();
        reader.Skip(3);
        long imageCount = reader.Int64();
        byte[] checksum = reader.Bytes(32).ToArray();
        int classCount = reader.Int32();
        if (classCount <= 0 || classCount > 1 << 20)
        {
            throw Corrupt(path, $"its class count {classCount} is invalid (the header is damaged)");
        }
        var classNames = new string[classCount];
        for (int i = 0; i < classCount; i++)
        {
            classNames[i] = reader.ShortString();
        }
        int splitCount = reader.Int32();
        if (splitCount <= 0 || splitCount > 64)
        {
            throw Corrupt(path, $"its split count {splitCount} is invalid (the header is damaged)");
        }
        var splitNames = new string[splitCount];
        var splitCounts = new long[splitCount];
        for (int s = 0; s < splitCount; s++)
        {
            splitNames[s] = reader.ShortString();
            splitCounts[s] = reader.Int64();
        }
        int sourceLength = (int)reader.UInt32();
        string source = Encoding.UTF8.GetString(reader.Bytes(sourceLength));
        int crcOffset = reader.Position;
        uint storedCrc = reader.UInt32();
        uint actualCrc = Crc32.Compute(header[..crcOffset]);
        if (storedCrc != actualCrc)
        {
            throw Corrupt(path, $"its header is damaged (header CRC-32 {storedCrc:x8} stored, {actualCrc:x8} computed)");
        }
        if (channels is not (1 or 3) || height is <= 0 or > MaxSide || width is <= 0 or > MaxSide || labelBytes is not (1 or 4))
        {
            throw Corrupt(path, $"its header declares an impossible shape (channels {channels}, {height}x{width}, {labelBytes}-byte labels; expected 1 or 3 channels, sides 1..{MaxSide}, 1- or 4-byte labels)");
        }
        if (labelBytes == 1 && classCount > 256)
        {
            throw Corrupt(path, $"its header declares 1-byte labels for {classCount} classes (at most 256 fit)");
        }
        if (splitCounts.Any(c => c < 0 || c > int.MaxValue) || splitCounts.Sum() != imageCount)
        {
            throw Corrupt(path, $"its split sizes ({string.Join(", ", splitCounts)}) do not add up to its image count {imageCount}");
        }
        long imageBytes = (long)channels * height * width;
        if (imageBytes > int.MaxValue)
        {
            throw Corrupt(path, $"its images of {channels}x{height}x{width} are larger than 2 GB each");
        }
        long expectedPayload = 0;
        try
        {
            foreach (long count in splitCounts)
            {
                expectedPayload = Align(checked(expectedPayload + count * imageBytes), SectionAlignment);
                expectedPayload = Align(checked(expectedPayload + count * labelBytes), SectionAlignment);
            }
            _ = checked(headerLength + expectedPayload);
        }
        catch (OverflowException)
        {
            throw Corrupt(path, $"its header declares {imageCount} images of {channels}x{height}x{width}, more bytes than a file can hold");
        }
        if (expectedPayload != payloadLength)
        {
            throw Corrupt(path, $"its header says the payload is {payloadLength} bytes but {imageCount} images of {channels}x{height}x{width} need {expectedPayload}");
        }
        long expectedFile = headerLength + payloadLength;
        if (fileLength < expectedFile)
        {
            throw Corrupt(path, $"it is truncated: {fileLength} bytes, expected {expectedFile} ({headerLength} header + {payloadLength} payload); {expectedFile - fileLength} bytes are missing");
        }
        if (fileLength > expectedFile)
        {
            throw Corrupt(path, $"it has {fileLength - expectedFile} unexpected bytes after the payload (expected {expectedFile} bytes in all)");
        }
        return new HeaderInfo(version, (int)headerLength, payloadLength, channels, height, width, labelBytes, checksum, classNames, splitNames, splitCounts, source);
    }

    private ref struct HeaderReader(string path, ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _position;

        public readonly int Position => _position;

        public void Skip(int n) => Bytes(n);

        public ReadOnlySpan<byte> Bytes(int n)
        {
            if (n < 0 || _position + (long)n > _data.Length)
            {
                throw Corrupt(path, $"its header is damaged or truncated (a field at byte {_position} runs past the {_data.Length}-byte header)");
            }
            var slice = _data.Slice(_position, n);
            _position += n;
            return slice;
        }

        public byte Byte() => Bytes(1)[0];

        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Bytes(4));

        public uint UInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4));

        public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Bytes(8));

        public string ShortString()
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2));
            return Encoding.UTF8.GetString(Bytes(length));
        }
    }

    internal static InvalidFileFormatException Corrupt(string path, string what) => new(path, FormatName, "content", what);

    internal static long Align(long value, long alignment) => checked(value + alignment - 1) / alignment * alignment;
}
